#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgolf/core/codec.h"

using namespace pgolf;

namespace {

const std::vector<Codec> kAllCodecs = {Codec::Zstd, Codec::Xz, Codec::Brotli};

// 1 MB alternating between random bytes and repetitive text, so that every
// codec has both literals and long matches to encode.
std::string mixed_megabyte() {
  std::mt19937 rng(1234);
  std::string s;
  const std::string text = "the quick brown fox jumps over the lazy dog; pgolf packs small models. ";
  while (s.size() < 1000000) {
    const std::size_t n = 1 + rng() % 4096;
    if (rng() % 2)
      for (std::size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(rng()));
    else
      for (std::size_t i = 0; i < n; ++i) s.push_back(text[i % text.size()]);
  }
  s.resize(1000000);
  return s;
}

// Runs f, which must throw std::runtime_error with a message naming codec c.
template <typename F>
std::string expect_error(Codec c, F f, const std::string& what) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(codec_name(c)), std::string::npos) << what << ": " << msg;
    EXPECT_GT(msg.size(), std::string(codec_name(c)).size() + 10) << what << ": " << msg;
    return msg;
  }
  ADD_FAILURE() << codec_name(c) << ": no error for " << what;
  return "";
}

// Pseudo-English: random words from a small list.
std::string word_salad(std::size_t n) {
  const char* words[] = {"model ", "weights ", "the ", "of ", "bits ", "per ", "byte ", "quantised ", "layer ",
                         "attention ", "and ", "a ", "train ", "step, ", "loss. ", "compress ", "golf\n"};
  std::mt19937 rng(7);
  std::string s;
  while (s.size() < n) s += words[rng() % (sizeof words / sizeof *words)];
  return s;
}

}  // namespace

TEST(Codec, NamesAndIds) {
  for (Codec c : kAllCodecs) {
    EXPECT_EQ(codec_from_id(static_cast<std::uint32_t>(c)), c);
    EXPECT_EQ(parse_codec(codec_name(c)), c);
  }
  EXPECT_STREQ(codec_name(Codec::Zstd), "zstd");
  EXPECT_STREQ(codec_name(Codec::Xz), "xz");
  EXPECT_STREQ(codec_name(Codec::Brotli), "brotli");
  EXPECT_EQ(static_cast<std::uint32_t>(Codec::Zstd), 1u);  // the artifact's codec id
  for (std::uint32_t id : {0u, 4u, 5u, 255u, 0xFFFFFFFFu}) EXPECT_FALSE(codec_from_id(id)) << id;
  for (const char* name : {"", "gzip", "ZSTD", "zst", "br", "xz "}) EXPECT_FALSE(parse_codec(name)) << name;
  EXPECT_THROW(compress("x", static_cast<Codec>(9)), std::runtime_error);
  EXPECT_THROW(decompress("x", static_cast<Codec>(9), 1), std::runtime_error);
}

TEST(Codec, RoundTripsExactly) {
  const std::string big = mixed_megabyte();
  for (Codec c : kAllCodecs) {
    for (const std::string& in : {std::string(), std::string("x"), std::string(1, '\0'), big}) {
      const std::string packed = compress(in, c);
      EXPECT_FALSE(packed.empty()) << codec_name(c);
      EXPECT_EQ(decompress(packed, c, in.size()), in) << codec_name(c) << " " << in.size() << " bytes";
    }
  }
}

TEST(Codec, IsDeterministicAndCompresses) {
  const std::string big = mixed_megabyte();
  for (Codec c : kAllCodecs) {
    const std::string a = compress(big, c), b = compress(big, c);
    EXPECT_EQ(a, b) << codec_name(c);
    EXPECT_LT(a.size(), big.size() * 6 / 10) << codec_name(c);  // about half of it is random
  }
}

TEST(Codec, BadDataAndWrongSizesThrow) {
  std::string in = mixed_megabyte().substr(0, 200000);
  for (Codec c : kAllCodecs) {
    const std::string packed = compress(in, c);
    const auto dec = [&](const std::string& p, std::uint64_t n) { return [&, p, n] { decompress(p, c, n); }; };
    expect_error(c, dec(packed, in.size() + 1), "expected size + 1");
    expect_error(c, dec(packed, in.size() - 1), "expected size - 1");
    expect_error(c, dec(packed, 0), "expected size 0");
    expect_error(c, dec(packed, UINT64_MAX), "expected size 2^64-1");
    expect_error(c, dec("", in.size()), "empty input");
    expect_error(c, dec(std::string(100, 'z'), 100), "not compressed data");
    expect_error(c, dec(packed.substr(0, packed.size() / 2), in.size()), "truncated to half");
    expect_error(c, dec(packed.substr(0, packed.size() - 1), in.size()), "last byte missing");
    expect_error(c, dec(packed + "junk", in.size()), "trailing bytes");
    // Flipped bytes: zstd and xz carry checksums and catch every one.
    if (c == Codec::Brotli) continue;
    for (std::size_t i = 1; i < 16; ++i) {
      std::string bad = packed;
      bad[bad.size() * i / 16] ^= 0x5A;
      expect_error(c, dec(bad, in.size()), "a flipped byte at " + std::to_string(bad.size() * i / 16));
    }
  }
}

// decompress_at_most: data of any size up to the bound, more throws.
TEST(Codec, DecompressAtMostTakesAnySizeUpToTheBound) {
  const std::string in = mixed_megabyte().substr(0, 200000);
  for (Codec c : kAllCodecs) {
    const std::string packed = compress(in, c);
    EXPECT_EQ(decompress_at_most(packed, c, in.size()), in) << codec_name(c);
    EXPECT_EQ(decompress_at_most(packed, c, std::uint64_t{1} << 30), in) << codec_name(c);
    EXPECT_EQ(decompress_at_most(compress("", c), c, 10), "") << codec_name(c);
    expect_error(c, [&] { decompress_at_most(packed, c, in.size() - 1); }, "bound size - 1");
    expect_error(c, [&] { decompress_at_most(packed + "junk", c, in.size()); }, "trailing bytes");
    expect_error(c, [&] { decompress_at_most(packed.substr(0, packed.size() / 2), c, in.size()); }, "truncated");
  }
}

// Brotli has no checksum: a flipped byte in a stretch of literals can decode
// to wrong bytes of the right size (the artifact header's CRC32 guards the
// packed bytes). Most flips still break its entropy codes; this pins that down
// for text so that a decoder silently accepting everything would be noticed.
TEST(Codec, BrotliCatchesMostFlipsInText) {
  const std::string in = word_salad(100000);
  const std::string packed = compress(in, Codec::Brotli);
  int caught = 0, silent = 0;
  for (std::size_t i = 0; i < 32; ++i) {
    std::string bad = packed;
    bad[bad.size() * i / 32] ^= 0x5A;
    try {
      EXPECT_NE(decompress(bad, Codec::Brotli, in.size()), in);
      ++silent;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("brotli"), std::string::npos) << e.what();
      ++caught;
    }
  }
  EXPECT_GE(caught, 16) << silent << " of 32 flipped bytes went unnoticed";
}

// A declared size far beyond what the data holds (a corrupt or hostile
// header) fails with both sizes named and without allocating it: the output
// grows only with the bytes really decoded, and zstd's frame header and xz's
// stream index are compared with it before anything is allocated.
TEST(Codec, HugeDeclaredSizeFailsWithoutAllocatingIt) {
  const std::string in = mixed_megabyte().substr(0, 200000);
  const std::uint64_t declared = std::uint64_t{3} << 30;
  auto peak_kb = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
  };
  for (Codec c : kAllCodecs) {
    const std::string packed = compress(in, c);
    const long before = peak_kb();
    const std::string msg = expect_error(c, [&] { decompress(packed, c, declared); }, "3 GiB declared");
    EXPECT_LT(peak_kb() - before, 256 * 1024) << codec_name(c) << ": the declared size was allocated";
    EXPECT_NE(msg.find(std::to_string(declared) + " bytes"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("cannot allocate"), std::string::npos) << msg;
    if (c == Codec::Brotli)  // no size of its own: it decodes, and says how much there was
      EXPECT_NE(msg.find("decompresses to 200000 bytes"), std::string::npos) << msg;
    else  // the frame header / stream index
      EXPECT_NE(msg.find("declares 200000 bytes"), std::string::npos) << msg;
  }
}
