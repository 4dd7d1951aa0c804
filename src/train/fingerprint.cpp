#include "pgolf/train/fingerprint.h"

#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "pgolf/core/io.h"
#include "pgolf/data/data.h"

namespace pgolf {
namespace {

// Size and CRC-32 of a file's first `limit` bytes (all of it by default).
std::string file_summary(const std::string& path, std::uintmax_t limit = UINTMAX_MAX) {
  return "bytes:" + std::to_string(std::filesystem::file_size(path)) + " crc32:" + std::to_string(file_crc32(path, limit));
}

std::map<std::string, std::string> parse(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const std::size_t eq = line.find('=');
    out[line.substr(0, eq)] = eq == std::string::npos ? "" : line.substr(eq + 1);
  }
  return out;
}

}  // namespace

std::string run_fingerprint(const Config& cfg, const std::map<std::string, std::string>& inputs) {
  std::ostringstream out;
  const std::map<std::string, std::string> values = config_values(cfg);
  for (const auto& k : config_keys()) {
    const std::string name = k.name;
    if (!changes_results(k) || name == "DATA_PATH" || name == "TOKENIZER_PATH") continue;
    out << "config." << name << "=" << values.at(name) << "\n";
  }
  for (const auto& [name, summary] : inputs) out << name << "=" << summary << "\n";
  return out.str();
}

std::map<std::string, std::string> input_identity(const Config& cfg) {
  std::map<std::string, std::string> out;
  auto name_of = [](const std::string& path) { return "data." + std::filesystem::path(path).filename().string(); };
  for (const auto& f : glob_sorted(cfg.run.data_path + "/fineweb_val_*.bin")) out[name_of(f)] = file_summary(f);
  for (const auto& f : glob_sorted(train_pattern(cfg.run.data_path))) out[name_of(f)] = file_summary(f, kShardHeaderBytes + (64 << 10));
  out["tokenizer"] = file_summary(cfg.run.tokenizer_path);
  return out;
}

std::vector<EntryDifference> differing_entries(const std::map<std::string, std::string>& first,
                                               const std::map<std::string, std::string>& second,
                                               const std::string& missing) {
  std::map<std::string, std::string> all = first;
  all.insert(second.begin(), second.end());
  std::vector<EntryDifference> out;
  for (const auto& [key, unused] : all) {
    const auto a = first.find(key), b = second.find(key);
    EntryDifference d{key, a == first.end() ? missing : a->second, b == second.end() ? missing : b->second};
    if (d.first != d.second) out.push_back(std::move(d));
  }
  return out;
}

void check_same_fingerprints(const std::vector<std::string>& by_rank) {
  if (by_rank.empty()) return;
  const std::map<std::string, std::string> zero = parse(by_rank[0]);
  for (std::size_t r = 1; r < by_rank.size(); ++r) {
    const std::vector<EntryDifference> diff = differing_entries(zero, parse(by_rank[r]), "(none)");
    if (diff.empty()) continue;
    const EntryDifference& d = diff.front();
    throw std::runtime_error("rank " + std::to_string(r) + " differs from rank 0 in " + d.key + ": rank 0 has '" +
                             d.first + "', rank " + std::to_string(r) + " has '" + d.second +
                             "'. Every rank of a run must train the same configuration on the same data and tokenizer; "
                             "if these ranks belong to different jobs, give each job its own MASTER_PORT");
  }
}

}  // namespace pgolf
