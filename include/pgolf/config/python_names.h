// The challenge's Python scripts' names (docs/FROM_PYTHON.md, "Variable
// names"): the environment variables that train_gpt.py — the baseline and the
// record scripts — reads and pgolf does not, each with the pgolf key that
// takes its place (or none) and what differs. load_config refuses them from
// the environment, --set and config files alike, naming the key to use: each
// setting has one name, so configurations and logs read one way, and a sweep
// over a Python name stops instead of silently changing nothing.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace pgolf {

struct PythonName {
  const char* name;       // as train_gpt.py reads it, e.g. "SWA_INTERVAL"
  const char* pgolf_key;  // the key that takes its place; "" when pgolf has none
  const char* note;       // how its meaning or units differ, or why pgolf has no key
};

const std::vector<PythonName>& python_names();
const PythonName* find_python_name(std::string_view name);

// "NAME is train_gpt.py's name; pgolf's key is KEY (note)", or
// "NAME is train_gpt.py's name; pgolf has no equivalent: note".
std::string explain_python_name(const PythonName& p);

}  // namespace pgolf
