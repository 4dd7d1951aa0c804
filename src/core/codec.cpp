#include "pgolf/core/codec.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <lzma.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <memory>
#include <new>
#include <stdexcept>
#include <string_view>

namespace pgolf {
namespace {

constexpr int kZstdLevel = 22;
constexpr std::uint32_t kXzPreset = 9 | LZMA_PRESET_EXTREME;
constexpr int kBrotliQuality = 11, kBrotliWindowBits = 24;

[[noreturn]] void fail(Codec c, const std::string& what) {
  throw std::runtime_error(std::string(codec_name(c)) + ": " + what);
}

std::string count(std::uint64_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

// A buffer of `size` bytes (compression: the codec's worst-case bound).
std::string output_buffer(Codec c, std::uint64_t size, const char* what) {
  try {
    return std::string(static_cast<std::size_t>(size), '\0');
  } catch (const std::exception&) {  // bad_alloc, length_error
    fail(c, std::string("cannot allocate the ") + what + " buffer of " + count(size));
  }
}

const std::uint8_t* bytes(std::string_view s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }
std::uint8_t* bytes(std::string& s) { return reinterpret_cast<std::uint8_t*>(s.data()); }

[[noreturn]] void too_large(Codec c, std::uint64_t expected) {
  fail(c, "data decompresses to more than the expected " + count(expected));
}
[[noreturn]] void too_small(Codec c, std::uint64_t got, std::uint64_t expected) {
  fail(c, "data decompresses to " + count(got) + ", expected " + count(expected));
}

// The decompressed size asked for: exactly `size` bytes (decompress()), or
// any number up to it (decompress_at_most()).
struct Expected {
  std::uint64_t size;
  bool exact;
  // Whether a size the data declares itself agrees; else the error's wording.
  std::string mismatch(std::uint64_t declared) const {
    if (exact ? declared == size : declared <= size) return "";
    return count(declared) + (exact ? ", expected " : ", at most ") + count(size);
  }
};

// A decoder's output: grown (doubling, from a few times the packed size) only
// as the data really decodes, and never past the expected size, so a size
// declared by a corrupt header costs memory only once the data bears it out.
class Output {
 public:
  Output(Codec c, Expected expected, std::size_t packed) : codec_(c), expected_(expected.size), exact_(expected.exact) {
    resize(std::max<std::uint64_t>(std::uint64_t{1} << 20, 4 * std::uint64_t{packed}));
  }
  // Doubles the buffer (up to the expected size); false when it is already there.
  bool grow() {
    if (buf_.size() >= expected_) return false;
    resize(2 * std::uint64_t{buf_.size()});
    return true;
  }
  std::uint8_t* at(std::size_t used) { return bytes(buf_) + used; }
  std::size_t room(std::size_t used) const { return buf_.size() - used; }
  std::string take(std::size_t used) {
    if (exact_ && used != expected_) too_small(codec_, used, expected_);
    buf_.resize(used);
    return std::move(buf_);
  }

 private:
  void resize(std::uint64_t n) {
    n = std::min(n, expected_);
    try {
      buf_.resize(static_cast<std::size_t>(n));
    } catch (const std::exception&) {  // bad_alloc, length_error
      fail(codec_, "cannot allocate the output buffer of " + count(n) + " (" + count(expected_) + " expected)");
    }
  }
  Codec codec_;
  std::uint64_t expected_;
  bool exact_;
  std::string buf_;
};

// ---- zstd ----

std::string zstd_compress(const std::string& in) {
  std::string out = output_buffer(Codec::Zstd, ZSTD_compressBound(in.size()), "compression");
  ZSTD_CCtx* ctx = ZSTD_createCCtx();
  if (!ctx) fail(Codec::Zstd, "cannot create a compression context");
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, kZstdLevel);
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 1);
  const std::size_t n = ZSTD_compress2(ctx, out.data(), out.size(), in.data(), in.size());
  ZSTD_freeCCtx(ctx);
  if (ZSTD_isError(n)) fail(Codec::Zstd, std::string("compression failed: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

std::string zstd_decompress(std::string_view in, Expected expected) {
  // The frame header's content size is checked before anything is allocated.
  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) fail(Codec::Zstd, "not zstd data (bad or truncated frame header)");
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && !expected.mismatch(declared).empty())
    fail(Codec::Zstd, "frame declares " + expected.mismatch(declared));
  Output out(Codec::Zstd, expected, in.size());
  const std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!ctx) fail(Codec::Zstd, "cannot create a decompression context");
  ZSTD_inBuffer src{in.data(), in.size(), 0};
  std::size_t used = 0, r = 0;
  for (;;) {
    if (out.room(used) == 0) out.grow();
    ZSTD_outBuffer dst{out.at(used), out.room(used), 0};
    const std::size_t before = src.pos;
    r = ZSTD_decompressStream(ctx.get(), &dst, &src);
    used += dst.pos;
    if (ZSTD_isError(r) || r == 0) break;
    if (dst.pos == 0 && src.pos == before) {  // stuck: out of room, or out of input
      if (out.room(used) == 0) too_large(Codec::Zstd, expected.size);
      fail(Codec::Zstd, "truncated data (frame ends after " + count(used) + " of output)");
    }
  }
  if (ZSTD_isError(r)) fail(Codec::Zstd, std::string("corrupt data: ") + ZSTD_getErrorName(r));
  if (src.pos != src.size) fail(Codec::Zstd, count(src.size - src.pos) + " of trailing data after the frame");
  return out.take(used);
}

// ---- xz ----

const char* lzma_message(lzma_ret r) {
  switch (r) {
    case LZMA_MEM_ERROR: return "out of memory";
    case LZMA_MEMLIMIT_ERROR: return "the data needs more memory than its size allows (not written by pgolf?)";
    case LZMA_FORMAT_ERROR: return "not xz data (bad magic)";
    case LZMA_OPTIONS_ERROR: return "unsupported options";
    case LZMA_DATA_ERROR: return "corrupt data";
    case LZMA_BUF_ERROR: return "truncated data";
    case LZMA_UNSUPPORTED_CHECK: return "unsupported integrity check";
    case LZMA_PROG_ERROR: return "invalid arguments (liblzma programming error)";
    default: return "unexpected liblzma error";
  }
}

std::string xz_compress(const std::string& in) {
  lzma_options_lzma opt;
  if (lzma_lzma_preset(&opt, kXzPreset)) fail(Codec::Xz, "liblzma does not support preset 9e");
  // A dictionary larger than the input buys nothing but makes every reader
  // allocate it (64 MiB at preset 9), so it is shrunk to the input size.
  opt.dict_size = static_cast<std::uint32_t>(
      std::clamp<std::uint64_t>(in.size(), LZMA_DICT_SIZE_MIN, opt.dict_size));
  lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, nullptr}};
  std::string out = output_buffer(Codec::Xz, lzma_stream_buffer_bound(in.size()), "compression");
  std::size_t pos = 0;
  const lzma_ret r = lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC64, nullptr, bytes(in), in.size(), bytes(out),
                                               &pos, out.size());
  if (r != LZMA_OK) fail(Codec::Xz, std::string("compression failed: ") + lzma_message(r));
  out.resize(pos);
  return out;
}

// The uncompressed size the stream's index (at its end) records, read
// before anything is decoded; the decoder checks the blocks against it.
std::uint64_t xz_declared_size(std::string_view in) {
  lzma_stream_flags footer;
  if (in.size() < 2 * LZMA_STREAM_HEADER_SIZE ||
      lzma_stream_footer_decode(&footer, bytes(in) + in.size() - LZMA_STREAM_HEADER_SIZE) != LZMA_OK ||
      footer.backward_size > in.size() - 2 * LZMA_STREAM_HEADER_SIZE)
    fail(Codec::Xz, "not xz data, or truncated (no valid stream footer)");
  lzma_index* index = nullptr;
  std::uint64_t memlimit = 1 << 20;
  std::size_t pos = in.size() - LZMA_STREAM_HEADER_SIZE - footer.backward_size;
  const lzma_ret r = lzma_index_buffer_decode(&index, &memlimit, nullptr, bytes(in), &pos, in.size() - LZMA_STREAM_HEADER_SIZE);
  if (r != LZMA_OK) fail(Codec::Xz, std::string("bad stream index: ") + lzma_message(r));
  const std::uint64_t size = lzma_index_uncompressed_size(index);
  lzma_index_end(index, nullptr);
  return size;
}

std::string xz_decompress(std::string_view in, Expected expected) {
  const std::uint64_t declared = xz_declared_size(in);
  if (!expected.mismatch(declared).empty()) fail(Codec::Xz, "stream index declares " + expected.mismatch(declared));
  // The decoder's dictionary is at most about the output size (see xz_compress):
  // a header asking for more is rejected rather than allocated.
  const std::uint64_t memlimit = 2 * std::min<std::uint64_t>(declared, 64 << 20) + (1 << 20);
  Output out(Codec::Xz, expected, in.size());
  struct Stream : lzma_stream {
    Stream() : lzma_stream(LZMA_STREAM_INIT) {}
    ~Stream() { lzma_end(this); }
  } s;
  lzma_ret r = lzma_stream_decoder(&s, memlimit, 0);
  if (r != LZMA_OK) fail(Codec::Xz, std::string("cannot start the decoder: ") + lzma_message(r));
  s.next_in = bytes(in);
  s.avail_in = in.size();
  std::size_t used = 0;
  do {
    if (out.room(used) == 0) out.grow();
    s.next_out = out.at(used);
    s.avail_out = out.room(used);
    r = lzma_code(&s, LZMA_FINISH);
    used = s.total_out;
  } while (r == LZMA_OK);
  const std::uint64_t left_in = s.avail_in, left_out = s.avail_out;
  if (r == LZMA_STREAM_END) {
    if (left_in != 0) fail(Codec::Xz, count(left_in) + " of trailing data after the stream");
    return out.take(used);
  }
  if (r == LZMA_BUF_ERROR && left_out == 0 && left_in != 0) too_large(Codec::Xz, expected.size);
  if (r == LZMA_BUF_ERROR && left_in == 0)
    fail(Codec::Xz, "truncated data (stream ends after " + count(used) + " of output)");
  fail(Codec::Xz, lzma_message(r));
}

// ---- brotli ----

std::string brotli_compress(const std::string& in) {
  std::size_t size = BrotliEncoderMaxCompressedSize(in.size());
  if (size == 0) fail(Codec::Brotli, "input of " + count(in.size()) + " is too large");
  std::string out = output_buffer(Codec::Brotli, size, "compression");
  if (!BrotliEncoderCompress(kBrotliQuality, kBrotliWindowBits, BROTLI_MODE_GENERIC, in.size(), bytes(in), &size,
                             bytes(out)))
    fail(Codec::Brotli, "compression failed");
  out.resize(size);
  return out;
}

// Brotli declares no total size: the output grows as it decodes.
std::string brotli_decompress(std::string_view in, Expected expected) {
  Output out(Codec::Brotli, expected, in.size());
  const std::unique_ptr<BrotliDecoderState, decltype(&BrotliDecoderDestroyInstance)> s(
      BrotliDecoderCreateInstance(nullptr, nullptr, nullptr), BrotliDecoderDestroyInstance);
  if (!s) fail(Codec::Brotli, "cannot create a decoder");
  std::size_t avail_in = in.size(), total = 0;
  const std::uint8_t* next_in = bytes(in);
  BrotliDecoderResult r;
  for (;;) {
    std::size_t avail_out = out.room(total);
    std::uint8_t* next_out = out.at(total);
    r = BrotliDecoderDecompressStream(s.get(), &avail_in, &next_in, &avail_out, &next_out, &total);
    if (r != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT || !out.grow()) break;
  }
  switch (r) {
    case BROTLI_DECODER_RESULT_SUCCESS:
      if (avail_in != 0) fail(Codec::Brotli, count(avail_in) + " of trailing data after the stream");
      return out.take(total);
    case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT: too_large(Codec::Brotli, expected.size);
    case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
      fail(Codec::Brotli, "truncated data (stream ends after " + count(total) + " of output)");
    default: fail(Codec::Brotli, std::string("corrupt data (") + BrotliDecoderErrorString(BrotliDecoderGetErrorCode(s.get())) + ")");
  }
}

[[noreturn]] void unknown(Codec c) {
  throw std::runtime_error("unknown codec id " + std::to_string(static_cast<std::uint32_t>(c)));
}

std::string decode(std::string_view packed, Codec c, Expected expected) {
  switch (c) {
    case Codec::Zstd: return zstd_decompress(packed, expected);
    case Codec::Xz: return xz_decompress(packed, expected);
    case Codec::Brotli: return brotli_decompress(packed, expected);
  }
  unknown(c);
}

}  // namespace

std::string compress(const std::string& data, Codec c) {
  switch (c) {
    case Codec::Zstd: return zstd_compress(data);
    case Codec::Xz: return xz_compress(data);
    case Codec::Brotli: return brotli_compress(data);
  }
  unknown(c);
}

std::string decompress(std::string_view packed, Codec c, std::uint64_t expected_size) {
  return decode(packed, c, {expected_size, true});
}

std::string decompress_at_most(std::string_view packed, Codec c, std::uint64_t max_size) {
  return decode(packed, c, {max_size, false});
}

const char* codec_name(Codec c) {
  switch (c) {
    case Codec::Zstd: return "zstd";
    case Codec::Xz: return "xz";
    case Codec::Brotli: return "brotli";
  }
  return "unknown";
}

std::optional<Codec> codec_from_id(std::uint32_t id) {
  for (Codec c : {Codec::Zstd, Codec::Xz, Codec::Brotli})
    if (static_cast<std::uint32_t>(c) == id) return c;
  return std::nullopt;
}

std::optional<Codec> parse_codec(const std::string& name) {
  for (Codec c : {Codec::Zstd, Codec::Xz, Codec::Brotli})
    if (name == codec_name(c)) return c;
  return std::nullopt;
}

}  // namespace pgolf
