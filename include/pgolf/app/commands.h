// The subcommands of the pgolf binary, one function each; src/app/main.cpp maps
// command-line options onto these.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "pgolf/app/bench.h"
#include "pgolf/config/config.h"
#include "pgolf/data/corpus.h"
#include "pgolf/data/download.h"

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
// `pgolf tokenizer`: trains the docs/MODEL.md ("Data") SentencePiece model on a corpus.
int cmd_tokenizer(const CorpusOptions& corpus, int vocab_size, const std::string& output, bool caseops);
// `pgolf shard`: tokenises a corpus into train/val shards.
int cmd_shard(const CorpusOptions& corpus, const std::string& tokenizer, const ShardOptions& opts);
// `pgolf train`: trains the configured model (docs/MODEL.md ("The optimiser")) and saves its weights.
// With `resume_dir` (a run folder), continues that run from its checkpoint:
// its config.env is read before `args`, and a configuration that would change
// the results is refused (checkpoint.h). Without it the run folder must be
// new, or with `overwrite` is emptied first; either way it is locked while
// the run lives (RunFolderLock). SIGINT or SIGTERM stops the run after the
// current step (train(), StopSignals); the exit code is then 128 + the
// signal's number (130, 143), else 0.
int cmd_train(const ConfigArgs& args, const std::string& resume_dir = "", bool overwrite = false);
// `pgolf bench`: times training steps of the configured model on random tokens.
int cmd_bench(const ConfigArgs& args, const BenchOptions& opts);
// `pgolf eval`: scores an artifact or .safetensors file with the sliding window.
int cmd_eval(const ConfigArgs& args, const std::string& path);
// `pgolf export`: prunes, quantises and packs a weights file (or, without one,
// the freshly initialised model of the configuration, for sizing).
// With random_std > 0 every matrix is first replaced by N(0, random_std^2)
// entries: compressed size depends on the shape of the row distribution, so
// this sizes an artifact of trained weights without training.
int cmd_export(const ConfigArgs& args, const std::string& weights, const std::string& output, double random_std);
// `pgolf inspect`: per-tensor table of an artifact and its size against the
// budget; with `codecs`, the payload's size under every codec and byte layout.
int cmd_inspect(const std::string& path, bool codecs);
// `pgolf compare`: reads the final results of the runs of set A and of set B
// (run folders or metrics.jsonl files; app/compare.h) and prints them, their
// means and spreads and the one-sided Welch test that A improves on B by at
// least `margin` nats of val_loss. The exit code is 0 whatever the verdict.
int cmd_compare(const std::vector<std::string>& runs_a, const std::vector<std::string>& runs_b, double margin);
// `pgolf data`: checks the shards and tokenizer of a configuration and prints
// their statistics.
int cmd_data(const ConfigArgs& args);
// `pgolf download`: fetches the official data (docs/DATA.md). An empty
// opts.endpoint is HF_ENDPOINT or the default; the token is HF_TOKEN; the
// progress line follows PROGRESS (auto, on, off).
int cmd_download(DownloadOptions opts);

}  // namespace pgolf
