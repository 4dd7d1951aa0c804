// The command line of the tool commands (app/tool_commands.h). Only the full
// build has them: CMakeLists.txt compiles src/app/tools.cpp into pgolf and
// defines PGOLF_TOOLS on src/app/main.cpp when the tree holds it, and the
// counted tree (README "Code bytes") leaves both out.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pgolf/app/commands.h"

namespace pgolf {

// Adds tokenizer, shard, bench, data, compare and download to `app`. The
// result runs the one that was parsed and returns its exit code, or nullopt
// when none of them was.
std::function<std::optional<int>()> add_tool_commands(CLI::App& app, ConfigArgs& cfg_args);

// `pgolf compare A... -- B...`: CLI11 reads everything after `--` as
// positional (a --margin there would be taken for a run), so the first `--`
// after `compare` in the arguments is swapped for a marker, which stays among
// the runs and splits them into the two sets. Called before parsing.
void mark_compare_separator(std::vector<std::string>& args);

}  // namespace pgolf
