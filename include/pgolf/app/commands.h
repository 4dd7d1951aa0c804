// The subcommands of the train, eval and export path, one function each;
// src/app/main.cpp maps command-line options onto these (the other commands:
// app/tool_commands.h).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "pgolf/config/config.h"

namespace pgolf {

// --config files and --set assignments; the environment is read in between.
struct ConfigArgs {
  std::vector<std::string> files, sets;
};
Config resolve_config(const ConfigArgs& args, std::map<std::string, std::string>* sources = nullptr);

// `pgolf config`: the resolved configuration with the source of every value,
// or with `list`, the documentation of every key.
int cmd_config(const ConfigArgs& args, bool list);
// `pgolf info`: build and device facts.
int cmd_info();
// `pgolf train`: trains the configured model (docs/MODEL.md ("The optimiser")) and saves its weights.
// With `resume_dir` (a run folder), continues that run from its checkpoint:
// its config.env is read before `args`, and a configuration that would change
// the results is refused (checkpoint.h). Without it the run folder must be
// new, or with `overwrite` is emptied first; either way it is locked while
// the run lives (RunFolderLock). SIGINT or SIGTERM stops the run after the
// current step (train(), StopSignals); the exit code is then 128 + the
// signal's number (130, 143), else 0.
int cmd_train(const ConfigArgs& args, const std::string& resume_dir = "", bool overwrite = false);
// `pgolf eval`: scores an artifact or .safetensors file with the sliding window.
int cmd_eval(const ConfigArgs& args, const std::string& path);
// `pgolf export`: prunes, quantises and packs a weights file (or, without one,
// the freshly initialised model of the configuration, for sizing).
// With random_std > 0 every matrix is first replaced by N(0, random_std^2)
// entries: compressed size depends on the shape of the row distribution, so
// this sizes an artifact of trained weights without training.
int cmd_export(const ConfigArgs& args, const std::string& weights, const std::string& output, double random_std);
}  // namespace pgolf
