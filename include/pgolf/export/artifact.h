// The submission artifact (docs/ARTIFACT.md): quantised tensors in a
// versioned little-endian container, compressed with one of the codecs of
// codec.h (named in the header), with checksums, and the model record
// (config/record.h) that says which model they are. Reading it executes
// nothing and bounds-checks every length.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgolf/core/codec.h"
#include "pgolf/export/quant.h"

namespace pgolf {

constexpr char kArtifactMagic[8] = {'P', 'G', 'O', 'L', 'F', 'A', 'R', 'T'};
constexpr std::uint32_t kArtifactVersion = 3;  // 2 (no model record) is still read
constexpr std::size_t kArtifactHeaderBytes = 40;
constexpr std::uint64_t kArtifactMaxPayload = std::uint64_t{4} << 30;  // 4 GiB
constexpr std::uint32_t kArtifactMaxRecord = 1 << 16;                   // 64 KiB of KEY=VALUE lines

// Every way an artifact can be unreadable; the message names the file.
struct ArtifactError : std::runtime_error {
  enum Kind { Truncated, BadMagic, BadVersion, HeaderChecksum, BadCodec, SizeMismatch, AbsurdLength, PayloadChecksum, Decompress, BadRecord, BadPayload };
  ArtifactError(Kind kind, const std::string& msg) : std::runtime_error(msg), kind(kind) {}
  Kind kind;
};

// The uncompressed payload: tensor records back to back.
std::string serialize_tensors(const std::vector<QuantTensor>& tensors);
std::vector<QuantTensor> deserialize_tensors(const std::string& payload, const std::string& path);

// The model record as the artifact stores it, ahead of the compressed
// payload: u32 raw size, u32 packed size, the KEY=VALUE text compressed with
// `codec`. Its size counts against the budget like the payload's.
std::string pack_record(const std::string& record_text, Codec codec);

// Writes the header, the packed record and a payload already compressed with
// `codec` atomically; returns the file size.
std::uint64_t write_artifact_packed(const std::string& path, std::uint64_t payload_size, const std::string& packed_record,
                                    const std::string& packed, Codec codec);
// Serialises, compresses and writes atomically; returns the file size.
std::uint64_t write_artifact(const std::string& path, const std::vector<QuantTensor>& tensors, Codec codec = Codec::Zstd,
                             const std::string& record_text = "");

struct ArtifactContents {
  std::vector<QuantTensor> tensors;
  Codec codec = Codec::Zstd;
  std::uint32_t version = kArtifactVersion;
  std::string record_text;         // KEY=VALUE lines; empty in version 2
  std::uint64_t record_bytes = 0;  // what the packed record takes in the file
};
// Reads, checks and decodes an artifact.
ArtifactContents read_artifact(const std::string& path);

// Copies the dequantised tensors into the model; names and shapes must match.
void load_artifact_into(GPT& model, const std::vector<QuantTensor>& tensors, const std::string& path);

// Compressed size of one tensor's record alone (for `pgolf inspect`).
std::uint64_t compressed_record_size(const QuantTensor& t, Codec codec);

}  // namespace pgolf
