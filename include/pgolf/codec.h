// General-purpose compressors at their strongest standard settings, for the
// artifact payload and the code archive. Every codec is single-threaded and
// deterministic: the same input always gives the same bytes.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace pgolf {

// The numeric ids are stored in files (the artifact header): never renumber.
enum class Codec : std::uint32_t {
  Zstd = 1,    // zstd level 22, with a content checksum
  Xz = 2,      // xz container (liblzma), preset 9|EXTREME, CRC64 check
  Brotli = 3,  // brotli quality 11, window 2^24
};

std::string compress(const std::string& data, Codec c);

// Inverts compress(). `expected_size` is the exact decompressed size: the output
// buffer is allocated once at that size and never grown, and anything else
// (corrupt or truncated data, trailing bytes, more or fewer bytes than
// expected) throws std::runtime_error naming the codec.
std::string decompress(const std::string& packed, Codec c, std::uint64_t expected_size);

const char* codec_name(Codec c);                          // "zstd", "xz", "brotli"
std::optional<Codec> codec_from_id(std::uint32_t id);     // nullopt for unknown ids
std::optional<Codec> parse_codec(const std::string& name);  // inverse of codec_name

}  // namespace pgolf
