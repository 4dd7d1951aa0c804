// The --config and --set options that every configured command takes, shared
// by src/app/main.cpp and src/app/tools.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "pgolf/app/commands.h"
#include "pgolf/core/doc.h"

namespace pgolf {

inline void add_config_options(CLI::App* cmd, ConfigArgs& args) {
  cmd->add_option("--config", args.files, PGOLF_DOC("KEY=VALUE config file(s), applied in order (see configs/)"))
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", args.sets, PGOLF_DOC("KEY=VALUE override, applied last (repeatable)"));
  cmd->footer(
      "Configuration precedence: defaults < --config FILE < environment < --set KEY=VALUE.\n"
      "In a file, '#' after white space starts a comment (KEY=12 # note sets 12); --set and environment\n"
      "values are literal, and a '#' comment there is an error.\n"
      "The keys most runs set (environment variables of the same names; type, default, meaning);\n"
      "`pgolf config --list` documents all " + std::to_string(config_keys().size()) + " of them:\n\n" +
      describe_config_keys(KeySelection::Common));
}

}  // namespace pgolf
