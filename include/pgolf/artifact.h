// The submission artifact (docs/ARTIFACT.md): quantised tensors in a
// versioned little-endian container, compressed with zstd level 22, with
// checksums. Reading it executes nothing and bounds-checks every length.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgolf/quant.h"

namespace pgolf {

constexpr char kArtifactMagic[8] = {'P', 'G', 'O', 'L', 'F', 'A', 'R', 'T'};
constexpr std::uint32_t kArtifactVersion = 2;
constexpr std::uint32_t kCodecZstd = 1;  // header field 12: the payload's compressor
constexpr std::size_t kArtifactHeaderBytes = 40;
constexpr std::uint64_t kArtifactMaxPayload = std::uint64_t{4} << 30;  // 4 GiB
constexpr int kZstdLevel = 22;

// Every way an artifact can be unreadable; the message names the file.
struct ArtifactError : std::runtime_error {
  enum Kind { Truncated, BadMagic, BadVersion, HeaderChecksum, BadCodec, SizeMismatch, AbsurdLength, PayloadChecksum, Decompress, BadPayload };
  ArtifactError(Kind kind, const std::string& msg) : std::runtime_error(msg), kind(kind) {}
  Kind kind;
};

// The uncompressed payload: tensor records back to back.
std::string serialize_tensors(const std::vector<QuantTensor>& tensors);
std::vector<QuantTensor> deserialize_tensors(const std::string& payload, const std::string& path);

// The payload compressed as the artifact stores it (zstd -22).
std::string compress_payload(const std::string& payload);
// Writes the header and an already compressed payload atomically; returns the file size.
std::uint64_t write_artifact_packed(const std::string& path, std::uint64_t payload_size, const std::string& packed);
// Serialises, compresses and writes atomically; returns the file size.
std::uint64_t write_artifact(const std::string& path, const std::vector<QuantTensor>& tensors);
std::vector<QuantTensor> read_artifact(const std::string& path);

// Copies the dequantised tensors into the model; names and shapes must match.
void load_artifact_into(GPT& model, const std::vector<QuantTensor>& tensors, const std::string& path);

// zstd level-22 size of one tensor's record alone (for `pgolf inspect`).
std::uint64_t compressed_record_size(const QuantTensor& t);

}  // namespace pgolf
