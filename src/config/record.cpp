#include "pgolf/config/record.h"

#include <cstring>

namespace pgolf {

namespace {

constexpr std::string_view kMetadataPrefix = "config.";

}  // namespace

bool recorded_key(const ConfigKey& key) {
  return std::strcmp(key.group, "model") == 0 || std::strcmp(key.name, "TRAIN_SEQ_LEN") == 0 ||
         std::strcmp(key.name, "EVAL_SEQ_LEN") == 0 || std::strcmp(key.name, "EVAL_STRIDE") == 0;
}

std::string record_origin(const ModelRecord& record) { return "the record of '" + record.file + "'"; }

ModelRecord model_record(const Config& cfg) {
  ModelRecord r;
  for (const auto& k : config_keys())
    if (recorded_key(k)) r.values[k.name] = get_config_value(cfg, k);
  return r;
}

std::string format_record(const ModelRecord& record) {
  std::string out;
  for (const auto& [k, v] : record.values) out += k + "=" + v + "\n";
  return out;
}

ModelRecord parse_record(std::string_view text, const std::string& file) {
  ModelRecord r;
  r.file = file;
  int lineno = 0;
  while (!text.empty()) {
    ++lineno;
    const std::size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    const std::size_t eq = line.find('=');
    const std::string where = "the model record of '" + file + "', line " + std::to_string(lineno);
    if (eq == std::string_view::npos || eq == 0) throw ConfigError(where + ": expected KEY=VALUE");
    if (!r.values.emplace(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1))).second)
      throw ConfigError(where + ": a key recorded twice");
  }
  return r;
}

std::map<std::string, std::string> record_metadata(const ModelRecord& record) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : record.values) out[std::string(kMetadataPrefix) + k] = v;
  return out;
}

ModelRecord record_from_metadata(const std::map<std::string, std::string>& metadata, const std::string& file) {
  ModelRecord r;
  r.file = file;
  for (const auto& [k, v] : metadata)
    if (k.compare(0, kMetadataPrefix.size(), kMetadataPrefix) == 0) r.values[k.substr(kMetadataPrefix.size())] = v;
  return r;
}

std::vector<std::string> record_conflicts(const Config& cfg, const ModelRecord& record,
                                          const std::map<std::string, std::string>& sources) {
  std::vector<std::string> out;
  const std::string recorded_origin = record_origin(record);
  for (const auto& [name, text] : record.values) {
    const ConfigKey* key = find_config_key(name);
    const auto source = sources.find(name);
    if (!key || source == sources.end() || source->second == recorded_origin) continue;
    Config as_recorded;  // the recorded text as the key writes it back (e.g. "0.50" as "0.5")
    set_config_value(as_recorded, *key, text, recorded_origin);
    const std::string recorded = get_config_value(as_recorded, *key), now = get_config_value(cfg, *key);
    if (recorded != now)
      out.push_back(name + " ('" + record.file + "' records '" + recorded + "'; " + source->second + " gives '" + now + "')");
  }
  return out;
}

}  // namespace pgolf
