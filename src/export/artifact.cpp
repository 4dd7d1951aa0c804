#include "pgolf/export/artifact.h"

#include <ATen/core/grad_mode.h>
#include <zlib.h>

#include <cstring>
#include <map>
#include <set>

#include "pgolf/core/io.h"

namespace pgolf {
namespace {

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);  // little endian on every supported platform
}

std::uint32_t crc32_of(const void* data, std::size_t n) {
  return static_cast<std::uint32_t>(::crc32(0L, static_cast<const Bytef*>(data), static_cast<uInt>(n)));
}

constexpr std::uint8_t kFlagFloor = 1, kFlagSymmetric = 2, kFlagGptq = 4, kFlagLqer = 8;
constexpr std::uint8_t kKnownFlags = kFlagFloor | kFlagSymmetric | kFlagGptq | kFlagLqer;

std::size_t element_bytes(Scheme s) {
  switch (s) {
    case Scheme::Fp16: return 2;
    case Scheme::Fp32: return 4;
    default: return 1;
  }
}

// Reads fixed-size fields from the payload, failing on any overrun.
class Reader {
 public:
  Reader(const std::string& buf, const std::string& path) : buf_(buf), path_(path) {}
  template <typename T>
  T get(const std::string& what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }
  const char* take(std::uint64_t n, const std::string& what) {
    if (n > buf_.size() - pos_) fail("payload ends inside " + what);
    const char* p = buf_.data() + pos_;
    pos_ += n;
    return p;
  }
  bool done() const { return pos_ == buf_.size(); }
  [[noreturn]] void fail(const std::string& what) const {
    throw ArtifactError(ArtifactError::BadPayload, "corrupt artifact '" + path_ + "': " + what);
  }

 private:
  const std::string& buf_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

// A tensor of `n` elements of `dtype` copied from the payload.
at::Tensor take_tensor(Reader& r, std::int64_t n, at::ScalarType dtype, const std::string& what) {
  at::Tensor t = at::empty({n}, dtype);
  const std::uint64_t bytes = static_cast<std::uint64_t>(n) * t.element_size();
  std::memcpy(t.data_ptr(), r.take(bytes, what), bytes);
  return t;
}

// An LQER record (lqer.h) of a [rows, cols] matrix; its integers must lie in
// their ranges and its scales be finite.
LowRankCorrection read_low_rank(Reader& r, const std::string& tn, const std::vector<std::int64_t>& shape) {
  if (shape.size() != 2) r.fail(tn + " has an LQER correction but is not a matrix");
  LowRankCorrection c;
  c.rank = r.get<std::uint8_t>(tn + " LQER rank");
  if (c.rank < 1 || c.rank > std::min(shape[0], shape[1])) r.fail(tn + " has LQER rank " + std::to_string(c.rank));
  const std::int64_t nb = c.rank * shape[1];
  c.a = take_tensor(r, shape[0] * c.rank, at::kChar, tn + " LQER A");
  c.a_scale = take_tensor(r, 1, at::kHalf, tn + " LQER A scale");
  c.b = take_tensor(r, nb, at::kChar, tn + " LQER B");
  c.b_scale = take_tensor(r, (nb + kLqerBlock - 1) / kLqerBlock, at::kHalf, tn + " LQER B scales");
  auto in_range = [](const at::Tensor& q, int lo, int hi) { return q.numel() == 0 || (q.min().item<int>() >= lo && q.max().item<int>() <= hi); };
  if (!in_range(c.a, kLqerALo, kLqerAHi) || !in_range(c.b, kLqerBLo, kLqerBHi)) r.fail(tn + " has LQER factors out of range");
  if (!at::isfinite(c.a_scale).all().item<bool>() || !at::isfinite(c.b_scale).all().item<bool>())
    r.fail(tn + " has non-finite LQER scales");
  return c;
}

}  // namespace

std::string serialize_tensors(const std::vector<QuantTensor>& tensors) {
  std::string out;
  put<std::uint32_t>(out, static_cast<std::uint32_t>(tensors.size()));
  for (const auto& t : tensors) {
    put<std::uint16_t>(out, static_cast<std::uint16_t>(t.name.size()));
    out += t.name;
    const RowQuantizer& rq = t.plan.quant;
    const bool quantised = t.plan.scheme == Scheme::IntRow;
    put<std::uint8_t>(out, static_cast<std::uint8_t>(t.plan.scheme));
    put<std::uint8_t>(out, static_cast<std::uint8_t>(quantised ? rq.bits : 0));
    put<std::uint8_t>(out, static_cast<std::uint8_t>(
                               quantised ? (rq.floor ? kFlagFloor : 0) | (rq.symmetric ? kFlagSymmetric : 0) |
                                               (rq.gptq ? kFlagGptq : 0) | (t.lqer.rank > 0 ? kFlagLqer : 0)
                                         : 0));
    put<std::uint8_t>(out, static_cast<std::uint8_t>(t.shape.size()));
    put<double>(out, quantised ? rq.clip_q : 0.0);
    put<double>(out, quantised ? rq.sd_k : 0.0);
    for (auto d : t.shape) put<std::int64_t>(out, d);
    const std::uint64_t data_bytes = t.data.numel() * t.data.element_size();
    put<std::uint64_t>(out, data_bytes);
    out.append(static_cast<const char*>(t.data.data_ptr()), data_bytes);
    const std::uint64_t scale_bytes = t.scale.defined() ? t.scale.numel() * t.scale.element_size() : 0;
    put<std::uint64_t>(out, scale_bytes);
    if (scale_bytes) out.append(static_cast<const char*>(t.scale.data_ptr()), scale_bytes);
    if (t.lqer.rank > 0) {  // rank, then A (int8), its scale, B (int8), its scales (fp16)
      put<std::uint8_t>(out, static_cast<std::uint8_t>(t.lqer.rank));
      for (const at::Tensor* x : {&t.lqer.a, &t.lqer.a_scale, &t.lqer.b, &t.lqer.b_scale})
        out.append(static_cast<const char*>(x->data_ptr()), x->numel() * x->element_size());
    }
  }
  return out;
}

std::vector<QuantTensor> deserialize_tensors(const std::string& payload, const std::string& path) {
  Reader r(payload, path);
  const auto count = r.get<std::uint32_t>("the tensor count");
  std::vector<QuantTensor> out;
  std::set<std::string> names;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string where = "tensor record " + std::to_string(i);
    const auto name_len = r.get<std::uint16_t>(where);
    QuantTensor t;
    t.name.assign(r.take(name_len, where + " name"), name_len);
    const std::string tn = "tensor '" + printable(t.name) + "'";  // names come from the file: shown escaped
    if (!names.insert(t.name).second) r.fail(tn + " appears twice");
    const auto scheme = r.get<std::uint8_t>(tn);
    const auto bits = r.get<std::uint8_t>(tn);
    const auto flags = r.get<std::uint8_t>(tn);
    const auto ndim = r.get<std::uint8_t>(tn);
    const auto clip_q = r.get<double>(tn);
    const auto sd_k = r.get<double>(tn);
    if (scheme > static_cast<int>(Scheme::IntRow)) r.fail(tn + " has unknown scheme " + std::to_string(scheme));
    t.plan.scheme = static_cast<Scheme>(scheme);
    const bool quantised = t.plan.scheme == Scheme::IntRow;
    if (quantised) {
      if (bits < 2 || bits > 8) r.fail(tn + " has " + std::to_string(bits) + " bits");
      if (flags & ~kKnownFlags) r.fail(tn + " has unknown flags " + std::to_string(flags));
      if (!(clip_q > 0.0 && clip_q <= 1.0)) r.fail(tn + " has clip quantile " + std::to_string(clip_q));
      if (!(sd_k >= 0.0 && sd_k < 1e6)) r.fail(tn + " has SDClip k " + std::to_string(sd_k));
      t.plan.quant = {bits, clip_q, (flags & kFlagFloor) != 0, (flags & kFlagSymmetric) != 0, sd_k, (flags & kFlagGptq) != 0};
    } else if (flags != 0) {
      r.fail(tn + " is not quantised but has flags " + std::to_string(flags));
    }
    if (ndim > 8) r.fail(tn + " has " + std::to_string(ndim) + " dimensions");
    std::uint64_t numel = 1;
    for (int d = 0; d < ndim; ++d) {
      const auto n = r.get<std::int64_t>(tn + " shape");
      if (n < 0 || (n > 0 && numel > kArtifactMaxPayload / static_cast<std::uint64_t>(n)))
        r.fail(tn + " has an absurd dimension " + std::to_string(n));
      t.shape.push_back(n);
      numel *= static_cast<std::uint64_t>(n);
    }
    const auto data_bytes = r.get<std::uint64_t>(tn + " data length");
    if (data_bytes != numel * element_bytes(t.plan.scheme))
      r.fail(tn + " data length " + std::to_string(data_bytes) + " does not fit its shape");
    const char* data = r.take(data_bytes, tn + " data");
    const auto dtype = t.plan.scheme == Scheme::Fp16 ? at::kHalf : t.plan.scheme == Scheme::Fp32 ? at::kFloat : at::kChar;
    t.data = at::empty({static_cast<std::int64_t>(numel)}, dtype);
    // An empty tensor has no storage (data_ptr() is null), and memcpy's pointers must never be.
    if (data_bytes > 0) std::memcpy(t.data.data_ptr(), data, data_bytes);
    const std::uint64_t rows = quantised ? (t.shape.empty() ? 1 : static_cast<std::uint64_t>(t.shape[0])) : 0;
    const auto scale_bytes = r.get<std::uint64_t>(tn + " scale length");
    if (scale_bytes != rows * 2)
      r.fail(tn + " scale length " + std::to_string(scale_bytes) + " does not fit its scheme");
    if (quantised) {
      if (rows == 0) r.fail(tn + " is quantised per row but has no rows");
      t.scale = at::empty({static_cast<std::int64_t>(rows)}, at::kHalf);
      std::memcpy(t.scale.data_ptr(), r.take(scale_bytes, tn + " scales"), scale_bytes);
    }
    if (flags & kFlagLqer) t.lqer = read_low_rank(r, tn, t.shape);
    out.push_back(std::move(t));
  }
  if (!r.done()) r.fail("trailing bytes after the last tensor");
  return out;
}

std::string pack_record(const std::string& record_text, Codec codec) {
  if (record_text.size() > kArtifactMaxRecord)
    throw std::runtime_error("the model record has " + std::to_string(record_text.size()) + " bytes, more than the artifact holds (64 KiB)");
  const std::string packed = compress(record_text, codec);
  std::string out;
  put<std::uint32_t>(out, static_cast<std::uint32_t>(record_text.size()));
  put<std::uint32_t>(out, static_cast<std::uint32_t>(packed.size()));
  return out + packed;
}

std::uint64_t write_artifact(const std::string& path, const std::vector<QuantTensor>& tensors, Codec codec,
                             const std::string& record_text) {
  const std::string payload = serialize_tensors(tensors);
  return write_artifact_packed(path, payload.size(), pack_record(record_text, codec), compress(payload, codec), codec);
}

std::uint64_t write_artifact_packed(const std::string& path, std::uint64_t payload_size, const std::string& packed_record,
                                    const std::string& packed, Codec codec) {
  std::string header(kArtifactMagic, sizeof kArtifactMagic);
  put<std::uint32_t>(header, kArtifactVersion);
  put<std::uint32_t>(header, static_cast<std::uint32_t>(codec));
  put<std::uint64_t>(header, payload_size);
  put<std::uint64_t>(header, packed_record.size() + packed.size());
  const auto crc = ::crc32(::crc32(0L, reinterpret_cast<const Bytef*>(packed_record.data()), static_cast<uInt>(packed_record.size())),
                           reinterpret_cast<const Bytef*>(packed.data()), static_cast<uInt>(packed.size()));
  put<std::uint32_t>(header, static_cast<std::uint32_t>(crc));
  put<std::uint32_t>(header, crc32_of(header.data(), header.size()));
  AtomicFile f(path);
  f.write(header);
  f.write(packed_record);
  f.write(packed);
  f.commit();
  return header.size() + packed_record.size() + packed.size();
}

ArtifactContents read_artifact(const std::string& path) {
  ReadOnlyFile file(path);
  auto fail = [&](ArtifactError::Kind k, const std::string& what) {
    return ArtifactError(k, "bad artifact '" + path + "': " + what);
  };
  if (file.size() < kArtifactHeaderBytes)
    throw fail(ArtifactError::Truncated, "file has " + std::to_string(file.size()) + " bytes, less than the 40-byte header");
  const std::uint8_t* h = file.data();
  if (std::memcmp(h, kArtifactMagic, sizeof kArtifactMagic) != 0)
    throw fail(ArtifactError::BadMagic, "not a pgolf artifact (bad magic)");
  auto field = [&](std::size_t off, auto v) {
    std::memcpy(&v, h + off, sizeof v);
    return v;
  };
  ArtifactContents out;
  out.version = field(8, std::uint32_t{});
  if (crc32_of(h, 36) != field(36, std::uint32_t{}))
    throw fail(ArtifactError::HeaderChecksum, "header checksum mismatch (the file is corrupted)");
  if (out.version != kArtifactVersion && out.version != 2)
    throw fail(ArtifactError::BadVersion, "unsupported version " + std::to_string(out.version) + " (this pgolf reads versions 2 and " +
                                              std::to_string(kArtifactVersion) + ")");
  const auto codec_id = field(12, std::uint32_t{});
  const std::optional<Codec> codec = codec_from_id(codec_id);
  if (!codec)
    throw fail(ArtifactError::BadCodec, "unknown codec id " + std::to_string(codec_id) +
                                            " (this pgolf reads 1 = zstd, 2 = xz, 3 = brotli)");
  out.codec = *codec;
  const auto payload_size = field(16, std::uint64_t{}), packed_size = field(24, std::uint64_t{});
  if (payload_size > kArtifactMaxPayload || packed_size > kArtifactMaxPayload)
    throw fail(ArtifactError::AbsurdLength, "declared payload of " + std::to_string(payload_size) + " bytes (" +
                                                std::to_string(packed_size) + " compressed) exceeds the 4 GiB limit");
  if (file.size() != kArtifactHeaderBytes + packed_size)
    throw fail(ArtifactError::SizeMismatch, "file has " + std::to_string(file.size()) + " bytes but the header says " +
                                                std::to_string(kArtifactHeaderBytes + packed_size) + " (truncated or padded)");
  std::string_view packed(reinterpret_cast<const char*>(h + kArtifactHeaderBytes), packed_size);
  if (crc32_of(packed.data(), packed.size()) != field(32, std::uint32_t{}))
    throw fail(ArtifactError::PayloadChecksum, "payload checksum mismatch (the file is corrupted)");
  // Version 3: the packed model record comes first (pack_record).
  if (out.version >= 3) {
    std::uint32_t raw = 0, size = 0;
    if (packed.size() < 8) throw fail(ArtifactError::BadRecord, "the model record's sizes are missing");
    std::memcpy(&raw, packed.data(), 4);
    std::memcpy(&size, packed.data() + 4, 4);
    if (raw > kArtifactMaxRecord || size > packed.size() - 8)
      throw fail(ArtifactError::BadRecord, "the model record declares " + std::to_string(raw) + " bytes (" + std::to_string(size) +
                                               " packed), more than the file or the 64 KiB limit holds");
    try {
      out.record_text = decompress(packed.substr(8, size), *codec, raw);
    } catch (const std::runtime_error& e) {
      throw fail(ArtifactError::BadRecord, std::string("the model record does not decode (") + e.what() + ")");
    }
    out.record_bytes = 8 + std::uint64_t{size};
    packed.remove_prefix(out.record_bytes);
  }
  // The declared payload size is checked against what the data says and
  // decodes to; memory grows only with the bytes really decoded (codec.h).
  std::string payload;
  try {
    payload = decompress(packed, *codec, payload_size);
  } catch (const std::runtime_error& e) {
    throw fail(ArtifactError::Decompress, "the " + std::to_string(packed.size()) + " compressed bytes do not decode to the " +
                                              std::to_string(payload_size) + "-byte payload the header declares (" + e.what() + ")");
  }
  out.tensors = deserialize_tensors(payload, path);
  return out;
}

void load_artifact_into(GPT& model, const std::vector<QuantTensor>& tensors, const std::string& path) {
  std::map<std::string, const QuantTensor*> byname;
  for (const auto& t : tensors) byname[t.name] = &t;
  for (const auto& p : model.parameters()) {
    auto it = byname.find(p.name);
    if (it == byname.end()) throw std::runtime_error("artifact '" + path + "' has no tensor '" + p.name + "'");
    if (at::IntArrayRef(it->second->shape) != p.tensor.sizes())
      throw std::runtime_error("artifact '" + path + "': '" + p.name + "' has shape " + c10::str(at::IntArrayRef(it->second->shape)) +
                               " but the configured model expects " + c10::str(p.tensor.sizes()) +
                               " (pass the config the artifact was trained with)");
  }
  if (byname.size() != model.parameters().size())
    throw std::runtime_error("artifact '" + path + "' has " + std::to_string(byname.size()) + " tensors, the model " +
                             std::to_string(model.parameters().size()));
  at::NoGradGuard no_grad;
  for (const auto& p : model.parameters()) p.tensor.detach().copy_(dequantize(*byname[p.name]));
}

std::uint64_t compressed_record_size(const QuantTensor& t, Codec codec) { return compress(serialize_tensors({t}), codec).size(); }

}  // namespace pgolf
