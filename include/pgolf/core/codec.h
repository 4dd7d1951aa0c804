// General-purpose compressors at their strongest standard settings, for the
// artifact payload and the code archive. Every codec is single-threaded and
// deterministic: the same input always gives the same bytes.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgolf {

// The numeric ids are stored in files (the artifact header): never renumber.
enum class Codec : std::uint32_t {
  Zstd = 1,    // zstd level 22, with a content checksum
  Xz = 2,      // xz container (liblzma), preset 9|EXTREME, CRC64 check
  Brotli = 3,  // brotli quality 11, window 2^24
};

std::string compress(const std::string& data, Codec c);

// Inverts compress(). `expected_size` is the exact decompressed size. It is
// first checked against the size the data declares itself (zstd's frame
// header, xz's stream index; brotli declares none); the output buffer then
// grows only as bytes are really decoded and never past `expected_size`, so a
// corrupt size costs no memory the data does not bear out. Anything else
// (corrupt or truncated data, trailing bytes, more or fewer bytes than
// expected) throws std::runtime_error naming the codec.
std::string decompress(std::string_view packed, Codec c, std::uint64_t expected_size);
// The same for data of unknown size (a code archive): any size up to
// `max_size`, more throws.
std::string decompress_at_most(std::string_view packed, Codec c, std::uint64_t max_size);

const char* codec_name(Codec c);                          // "zstd", "xz", "brotli"
std::optional<Codec> codec_from_id(std::uint32_t id);     // nullopt for unknown ids
std::optional<Codec> parse_codec(const std::string& name);  // inverse of codec_name

}  // namespace pgolf
