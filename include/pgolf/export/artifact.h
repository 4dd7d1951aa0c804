// The submission artifact (docs/ARTIFACT.md): quantised tensors in a
// versioned little-endian container, compressed with one of the codecs of
// codec.h (named in the header), with checksums. Reading it executes nothing and bounds-checks every length.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgolf/core/codec.h"
#include "pgolf/export/quant.h"

namespace pgolf {

constexpr char kArtifactMagic[8] = {'P', 'G', 'O', 'L', 'F', 'A', 'R', 'T'};
constexpr std::uint32_t kArtifactVersion = 2;
constexpr std::size_t kArtifactHeaderBytes = 40;
constexpr std::uint64_t kArtifactMaxPayload = std::uint64_t{4} << 30;  // 4 GiB

// Every way an artifact can be unreadable; the message names the file.
struct ArtifactError : std::runtime_error {
  enum Kind { Truncated, BadMagic, BadVersion, HeaderChecksum, BadCodec, SizeMismatch, AbsurdLength, PayloadChecksum, Decompress, BadPayload };
  ArtifactError(Kind kind, const std::string& msg) : std::runtime_error(msg), kind(kind) {}
  Kind kind;
};

// The uncompressed payload: tensor records back to back.
std::string serialize_tensors(const std::vector<QuantTensor>& tensors);
std::vector<QuantTensor> deserialize_tensors(const std::string& payload, const std::string& path);

// Writes the header and a payload already compressed with `codec` atomically; returns the file size.
std::uint64_t write_artifact_packed(const std::string& path, std::uint64_t payload_size, const std::string& packed, Codec codec);
// Serialises, compresses and writes atomically; returns the file size.
std::uint64_t write_artifact(const std::string& path, const std::vector<QuantTensor>& tensors, Codec codec = Codec::Zstd);
// Reads, checks and decodes an artifact; `codec`, when given, receives the payload's codec.
std::vector<QuantTensor> read_artifact(const std::string& path, Codec* codec = nullptr);

// Copies the dequantised tensors into the model; names and shapes must match.
void load_artifact_into(GPT& model, const std::vector<QuantTensor>& tensors, const std::string& path);

// Compressed size of one tensor's record alone (for `pgolf inspect`).
std::uint64_t compressed_record_size(const QuantTensor& t, Codec codec);

}  // namespace pgolf
