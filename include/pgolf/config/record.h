// What a model file records of the configuration that made it
// (docs/ARTIFACT.md, "The model record"): every key of the model section and
// the keys that decide the score — TRAIN_SEQ_LEN (the validation split is cut
// to whole training sequences), EVAL_SEQ_LEN and EVAL_STRIDE. The artifact
// carries it beside its tensors and model.safetensors in its metadata, so
// scoring a file needs no configuration, and a configuration that sets one
// of these keys to another value is caught before any work.
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pgolf/config/config.h"

namespace pgolf {

struct ModelRecord {
  std::map<std::string, std::string> values;  // KEY -> value as format_config writes it
  std::string file;                           // the file it was read from (for messages)
};

// The keys a record holds.
bool recorded_key(const ConfigKey& key);
// Where load_config says a recorded value came from: "the record of 'FILE'".
std::string record_origin(const ModelRecord& record);
// The record of a configuration whose derived defaults are filled.
ModelRecord model_record(const Config& cfg);

// KEY=VALUE lines (the artifact's form) and back. Parsing checks the form
// only (a line without '=', a key twice); load_config checks keys and values.
std::string format_record(const ModelRecord& record);
ModelRecord parse_record(std::string_view text, const std::string& file);
// The safetensors metadata form: one entry "config.KEY" per key. Entries
// without that prefix are not part of the record.
std::map<std::string, std::string> record_metadata(const ModelRecord& record);
ModelRecord record_from_metadata(const std::map<std::string, std::string>& metadata, const std::string& file);

// The keys that `sources` (as load_config records them) say the
// configuration set, to a value other than the record's: one entry per key,
// "KEY (FILE records 'a'; ORIGIN gives 'b')".
std::vector<std::string> record_conflicts(const Config& cfg, const ModelRecord& record,
                                          const std::map<std::string, std::string>& sources);

}  // namespace pgolf
