#include "pgolf/model/weights.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <tuple>

#include "pgolf/core/io.h"

namespace pgolf {
namespace {

const std::map<std::string, at::ScalarType>& dtypes() {
  static const std::map<std::string, at::ScalarType> m = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},   {"U8", at::kByte},       {"BOOL", at::kBool}};
  return m;
}

std::string dtype_name(at::ScalarType t) {
  for (const auto& [name, type] : dtypes())
    if (type == t) return name;
  throw std::invalid_argument(std::string("safetensors: unsupported dtype ") + c10::toString(t));
}

}  // namespace

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    at::Tensor c = t.tensor.detach().to(at::kCPU).contiguous();
    const std::uint64_t n = c.numel() * c.element_size();
    header[t.name] = {{"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    cpu.push_back(c);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data starts 8-byte aligned
  const std::uint64_t len = h.size();
  AtomicFile f(path);
  f.write(&len, sizeof len);  // little endian on every platform pgolf builds for
  f.write(h);
  for (const auto& c : cpu) f.write(c.data_ptr(), c.numel() * c.element_size());
  f.commit();
}

std::vector<NamedTensor> load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  ReadOnlyFile file(path);
  auto fail = [&](const std::string& what) -> std::runtime_error {
    return std::runtime_error("bad safetensors file '" + path + "': " + what);
  };
  if (file.size() < 8) throw fail("shorter than the 8-byte header length");
  std::uint64_t len = 0;
  std::memcpy(&len, file.data(), 8);
  if (len > file.size() - 8) throw fail("header length " + std::to_string(len) + " exceeds the file size");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file.data() + 8, file.data() + 8 + len);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  if (metadata && header.contains("__metadata__")) {
    const auto& m = header["__metadata__"];
    if (!m.is_object()) throw fail("__metadata__ is not a JSON object");
    for (const auto& [key, value] : m.items()) {
      if (!value.is_string()) throw fail("__metadata__ entry '" + printable(key) + "' is not a string");
      (*metadata)[key] = value.get<std::string>();
    }
  }
  const std::uint8_t* data = file.data() + 8 + len;
  const std::uint64_t data_size = file.size() - 8 - len;
  // Every entry is checked before anything is allocated.
  struct Entry {
    std::uint64_t begin, end;
    std::string name;
    at::ScalarType dtype;
    std::vector<std::int64_t> shape;
  };
  std::vector<Entry> entries;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = "tensor '" + printable(name) + "'";  // names come from the file: shown escaped
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      throw fail(where + " lacks dtype, shape or data_offsets");
    auto dt = dtypes().find(entry["dtype"].is_string() ? entry["dtype"].get<std::string>() : "");
    if (dt == dtypes().end()) throw fail(where + " has unknown dtype " + entry["dtype"].dump());
    const auto& off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw fail(where + " has bad data_offsets " + off.dump());
    const std::uint64_t begin = off[0], end = off[1];
    if (begin > end || end > data_size)
      throw fail(where + " data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                 "] fall outside the " + std::to_string(data_size) + " data bytes");
    // bytes = element size x dims, which must not wrap around.
    std::vector<std::int64_t> shape;
    std::uint64_t bytes = c10::elementSize(dt->second);
    bool wraps = false;
    if (!entry["shape"].is_array()) throw fail(where + " has a bad shape " + entry["shape"].dump());
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned() || d.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        throw fail(where + " has a bad shape " + entry["shape"].dump());
      shape.push_back(d.get<std::int64_t>());
      wraps |= __builtin_mul_overflow(bytes, d.get<std::uint64_t>(), &bytes);
    }
    if (wraps || end - begin != bytes)
      throw fail(where + " shape " + entry["shape"].dump() + " needs " + (wraps ? "over 2^64" : std::to_string(bytes)) +
                 " bytes but its range has " + std::to_string(end - begin));
    entries.push_back({begin, end, name, dt->second, std::move(shape)});
  }
  // The ranges tile the data section: sorted, no gap, no overlap, nothing after
  // the last one (a wrong header length or appended bytes show up here).
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Entry* a, const Entry* b) { return std::tie(a->begin, a->end) < std::tie(b->begin, b->end); });
  std::uint64_t covered = 0;
  std::string previous = "the start of the data section";
  for (const Entry* p : by_offset) {
    const Entry& e = *p;
    const std::string where = "tensor '" + printable(e.name) + "' [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ")";
    if (e.begin < covered)
      throw fail("tensor byte ranges overlap: " + where + " starts before " + previous + " ends at " + std::to_string(covered));
    if (e.begin > covered)
      throw fail(where + " starts " + std::to_string(e.begin - covered) + " bytes after " + previous + " ends (a gap no tensor covers)");
    covered = e.end;
    previous = "tensor '" + printable(e.name) + "'";
  }
  if (covered != data_size)
    throw fail(std::to_string(data_size - covered) + " of the " + std::to_string(data_size) + " data bytes lie after " + previous +
               " (a wrong header length " + std::to_string(len) + ", or bytes appended to the file)");
  std::vector<NamedTensor> out;
  for (const auto& e : entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
    // An empty tensor has no storage (data_ptr() is null), and memcpy's pointers must never be.
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
    out.push_back({e.name, t});
  }
  return out;
}

void copy_weights(GPT& model, const std::vector<NamedTensor>& tensors, const std::string& source) {
  std::map<std::string, at::Tensor> loaded;
  for (const auto& t : tensors) loaded[t.name] = t.tensor;
  for (const auto& p : model.parameters()) {
    auto it = loaded.find(p.name);
    if (it == loaded.end()) throw std::runtime_error(source + " has no tensor '" + p.name + "'");
    if (!it->second.is_floating_point())
      throw std::runtime_error(source + ": '" + p.name + "' is " + std::string(c10::toString(it->second.scalar_type())) +
                               ", not a floating-point tensor (model weights are float32, float16 or bfloat16)");
    if (it->second.sizes() != p.tensor.sizes())
      throw std::runtime_error(source + ": '" + p.name + "' has shape " + c10::str(it->second.sizes()) +
                               " but the configured model expects " + c10::str(p.tensor.sizes()) +
                               " (check NUM_LAYERS, MODEL_DIM, ... against the file)");
  }
  std::set<std::string> expected;
  for (const auto& p : model.parameters()) expected.insert(p.name);
  for (const auto& [name, t] : loaded)
    if (!expected.count(name)) throw std::runtime_error(source + " has tensor '" + printable(name) + "' that the model lacks");
  at::NoGradGuard no_grad;
  for (const auto& p : model.parameters()) p.tensor.copy_(loaded[p.name]);
}

void load_weights(GPT& model, const std::string& path) {
  copy_weights(model, load_safetensors(path), "weights file '" + path + "'");
}

}  // namespace pgolf
