#include "pgolf/train/checkpoint.h"

#include <ATen/core/grad_mode.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <set>

#include <zlib.h>

#include "pgolf/core/io.h"
#include "pgolf/model/weights.h"
#include "pgolf/train/fingerprint.h"

namespace pgolf {
namespace {

constexpr const char* kFormat = "pgolf-checkpoint";
constexpr const char* kVersion = "1";
constexpr std::int64_t kMaxTensors = 1 << 20;

// The tensor groups besides the weights, by name prefix: optim.<i>, swa.<i>, ema.<i>.
struct Group {
  const char* prefix;
  std::vector<at::Tensor> TrainState::*member;
};
const Group kGroups[] = {{"optim", &TrainState::optimizer}, {"swa", &TrainState::swa_sum}, {"ema", &TrainState::ema}};

std::string count_key(const Group& g) { return std::string(g.prefix) + "_tensors"; }
std::string tensor_name(const Group& g, std::size_t i) { return std::string(g.prefix) + "." + std::to_string(i); }

// The metadata of a file being read: every value is taken once, parsed
// strictly, and a key left over at the end is an error too.
class Metadata {
 public:
  Metadata(std::map<std::string, std::string> values, std::string path) : values_(std::move(values)), path_(std::move(path)) {}

  CheckpointError error(const std::string& what) const {
    return CheckpointError("bad checkpoint '" + path_ + "': " + what);
  }

  std::string text(const std::string& key) {
    auto it = values_.find(key);
    if (it == values_.end()) throw error("metadata lacks '" + key + "'");
    std::string v = std::move(it->second);
    values_.erase(it);
    return v;
  }

  std::int64_t integer(const std::string& key, std::int64_t lo, std::int64_t hi) {
    const std::string v = text(key);
    std::int64_t x = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc() || end != v.data() + v.size() || v.empty()) throw bad(key, v, "an integer");
    if (x < lo || x > hi) throw bad(key, v, "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
  }

  double milliseconds(const std::string& key) {
    const std::string v = text(key);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x) || x < 0) throw bad(key, v, "a finite number >= 0");
    return x;
  }

  bool flag(const std::string& key) { return integer(key, 0, 1) == 1; }

  // The entries `prefix`<KEY> (config., inputs.), taken out.
  std::map<std::string, std::string> prefixed(const std::string& prefix) {
    std::map<std::string, std::string> out;
    for (auto it = values_.begin(); it != values_.end();) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) {
        ++it;
        continue;
      }
      out[it->first.substr(prefix.size())] = it->second;
      it = values_.erase(it);
    }
    return out;
  }

  void expect_all_taken() const {
    if (!values_.empty()) throw error("unknown metadata entry '" + printable(values_.begin()->first) + "'");
  }

 private:
  CheckpointError bad(const std::string& key, const std::string& v, const std::string& expected) const {
    return error("metadata '" + key + "' is '" + printable(v) + "', not " + expected);
  }
  std::map<std::string, std::string> values_;
  std::string path_;
};

// Sorts the file's tensors into the state: model.<name> into the weights, the
// groups by index up to their counts; anything else is an error.
void take_tensors(TrainState& s, std::vector<NamedTensor> tensors, Metadata& meta) {
  std::map<std::string, at::Tensor> rest;
  const std::string model = "model.";
  for (auto& t : tensors) {
    if (t.name.compare(0, model.size(), model) == 0)
      s.weights.push_back({t.name.substr(model.size()), t.tensor});
    else
      rest[t.name] = t.tensor;
  }
  for (const Group& g : kGroups) {
    const std::int64_t n = meta.integer(count_key(g), 0, kMaxTensors);
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
      auto it = rest.find(tensor_name(g, i));
      if (it == rest.end())
        throw meta.error("lacks tensor '" + tensor_name(g, i) + "' (" + count_key(g) + "=" + std::to_string(n) + ")");
      (s.*g.member).push_back(it->second);
      rest.erase(it);
    }
  }
  if (!rest.empty()) throw meta.error("holds an unexpected tensor '" + printable(rest.begin()->first) + "'");
  if (s.weights.empty()) throw meta.error("holds no model weights");
}

}  // namespace

namespace {

// CRC-32 of everything the file holds but the checksum itself: each tensor
// (by name: its name, dtype, shape and bytes) and each metadata entry (by key).
std::string checksum_of(std::vector<NamedTensor> tensors, const std::map<std::string, std::string>& meta) {
  std::sort(tensors.begin(), tensors.end(), [](const NamedTensor& a, const NamedTensor& b) { return a.name < b.name; });
  uLong crc = ::crc32(0L, Z_NULL, 0);
  auto add = [&](const void* p, std::size_t n) {
    for (std::size_t done = 0; done < n;) {  // zlib takes at most 4 GiB at a time
      const auto chunk = static_cast<uInt>(std::min<std::size_t>(n - done, 1u << 30));
      crc = ::crc32(crc, static_cast<const Bytef*>(p) + done, chunk);
      done += chunk;
    }
  };
  auto add_text = [&](const std::string& t) { add(t.c_str(), t.size() + 1); };
  for (const auto& t : tensors) {
    const at::Tensor c = t.tensor.detach().to(at::kCPU).contiguous();
    add_text(t.name);
    add_text(c10::toString(c.scalar_type()));
    for (const std::int64_t d : c.sizes()) add(&d, sizeof d);
    add(c.data_ptr(), c.nbytes());
  }
  for (const auto& [k, v] : meta)
    if (k != "checksum") add_text(k + "=" + v);
  return std::to_string(crc);
}

}  // namespace


void save_checkpoint(const std::string& path, const TrainState& s) {
  std::vector<NamedTensor> tensors;
  for (const auto& w : s.weights) tensors.push_back({"model." + w.name, w.tensor});
  std::map<std::string, std::string> meta = {
      {"format", kFormat},
      {"version", kVersion},
      {"step", std::to_string(s.step)},
      {"agreed_step", std::to_string(s.agreed_step)},
      {"stop_after", std::to_string(s.stop_after)},
      {"swa_count", std::to_string(s.swa_count)},
      {"data_file", std::to_string(s.data.file)},
      {"data_offset", std::to_string(s.data.offset)},
      {"train_ms", shortest_decimal(s.train_ms)},
      {"agreed_ms", shortest_decimal(s.agreed_ms)},
      {"first_step_ms", shortest_decimal(s.first_step_ms)},
      {"qat", s.qat ? "1" : "0"},
      {"looped", s.looped ? "1" : "0"},
      {"world_size", std::to_string(s.world_size)},
      {"device", s.device},
  };
  for (const Group& g : kGroups) {
    const auto& ts = s.*g.member;
    meta[count_key(g)] = std::to_string(ts.size());
    for (std::size_t i = 0; i < ts.size(); ++i) tensors.push_back({tensor_name(g, i), ts[i]});
  }
  for (const auto& [k, v] : s.config) meta["config." + k] = v;
  for (const auto& [k, v] : s.inputs) meta["inputs." + k] = v;
  meta["checksum"] = checksum_of(tensors, meta);
  save_safetensors(path, tensors, meta);
}

TrainState load_checkpoint(const std::string& path) {
  std::map<std::string, std::string> values;
  std::vector<NamedTensor> tensors = load_safetensors(path, &values);
  const std::string computed = checksum_of(tensors, values);
  Metadata meta(std::move(values), path);
  if (meta.text("format") != kFormat) throw meta.error("not a pgolf checkpoint (metadata 'format' is not " + std::string(kFormat) + ")");
  if (const std::string v = meta.text("version"); v != kVersion)
    throw meta.error("version '" + printable(v) + "', this pgolf reads version " + kVersion);
  TrainState s;
  s.path = path;
  s.step = meta.integer("step", 1, INT64_MAX);
  s.agreed_step = meta.integer("agreed_step", 0, s.step);
  s.stop_after = meta.integer("stop_after", -1, INT64_MAX);
  s.swa_count = meta.integer("swa_count", 0, INT64_MAX);
  s.data.file = static_cast<std::size_t>(meta.integer("data_file", 0, INT64_MAX));
  s.data.offset = static_cast<std::size_t>(meta.integer("data_offset", 0, INT64_MAX));
  s.train_ms = meta.milliseconds("train_ms");
  s.agreed_ms = meta.milliseconds("agreed_ms");
  s.first_step_ms = meta.milliseconds("first_step_ms");
  s.qat = meta.flag("qat");
  s.looped = meta.flag("looped");
  s.world_size = static_cast<int>(meta.integer("world_size", 1, 8));
  s.device = meta.text("device");
  if (s.device != "cpu" && s.device != "cuda") throw meta.error("metadata 'device' is '" + printable(s.device) + "', not cpu or cuda");
  take_tensors(s, std::move(tensors), meta);
  if ((s.swa_count == 0) != s.swa_sum.empty())
    throw meta.error("swa_count=" + std::to_string(s.swa_count) + " but " + std::to_string(s.swa_sum.size()) + " SWA tensors");
  const std::string stored = meta.text("checksum");
  s.config = meta.prefixed("config.");
  s.inputs = meta.prefixed("inputs.");
  meta.expect_all_taken();
  // Last, so that a damaged file names its first readable fault; a fault
  // every other check lets pass (a flipped bit in a weight) ends here.
  if (stored != computed)
    throw meta.error("checksum mismatch (stored " + printable(stored) + ", computed " + computed +
                     "): the file was changed or damaged after it was written; resume from another copy, or start again");
  return s;
}

void check_resumable(const TrainState& s, const Config& cfg, int world_size, const std::string& device,
                     const std::map<std::string, std::string>& inputs) {
  std::vector<std::string> faults;
  Config filled = cfg;  // the checkpoint holds the values the run used, derived defaults resolved
  fill_derived(filled);
  const std::map<std::string, std::string> now = config_values(filled);
  const bool by_content = !s.inputs.empty();
  for (const auto& k : config_keys()) {
    if (!changes_results(k)) continue;
    if (by_content && (std::string_view(k.name) == "DATA_PATH" || std::string_view(k.name) == "TOKENIZER_PATH")) continue;
    auto it = s.config.find(k.name);
    if (it == s.config.end())
      faults.push_back(std::string(k.name) + " (not in the checkpoint; now '" + now.at(k.name) + "')");
    else if (it->second != now.at(k.name))
      faults.push_back(std::string(k.name) + " (checkpoint '" + printable(it->second) + "', now '" + now.at(k.name) + "')");
  }
  for (const auto& [name, value] : s.config)
    if (!find_config_key(name)) faults.push_back(printable(name) + " (in the checkpoint, unknown to this pgolf)");
  if (by_content) {
    for (const auto& d : differing_entries(s.inputs, inputs, "none"))
      faults.push_back("the content of " + printable(d.key) + " (checkpoint '" + printable(d.first) + "', now '" +
                       d.second + "')");
  }
  if (s.world_size != world_size)
    faults.push_back("the world size (checkpoint " + std::to_string(s.world_size) + " processes, now " +
                     std::to_string(world_size) + ")");
  if (s.device != device) faults.push_back("the device (checkpoint " + s.device + ", now " + device + ")");
  if (faults.empty()) return;
  std::string list;
  for (const auto& f : faults) list += (list.empty() ? "" : ", ") + f;
  throw CheckpointError("cannot resume from '" + s.path + "': the run would differ from the checkpoint's in " + list +
                        " (resume with the values the run had, or start a new run)");
}

}  // namespace pgolf
