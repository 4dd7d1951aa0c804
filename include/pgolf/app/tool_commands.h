// The commands outside the train, eval and export path: data preparation,
// download, benchmarks, comparisons of runs, submissions, and reading
// artifacts and train_gpt.py back. They are not part of the
// counted code (README "Code bytes"): src/app/tools.cpp wires them to the
// command line of the full build only.
#pragma once
#include <string>
#include <vector>

#include "pgolf/app/bench.h"
#include "pgolf/app/commands.h"
#include "pgolf/data/corpus.h"
#include "pgolf/data/download.h"

namespace pgolf {

// `pgolf tokenizer`: trains the docs/MODEL.md ("Data") SentencePiece model on a corpus.
int cmd_tokenizer(const CorpusOptions& corpus, int vocab_size, const std::string& output, bool caseops);
// `pgolf shard`: tokenises a corpus into train/val shards.
int cmd_shard(const CorpusOptions& corpus, const std::string& tokenizer, const ShardOptions& opts);
// `pgolf bench`: times training steps of the configured model on random tokens.
int cmd_bench(const ConfigArgs& args, const BenchOptions& opts);
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

// `pgolf inspect`: per-tensor table of an artifact and its size against the
// budget; with `codecs`, the payload's size under every codec and byte layout.
// Given a train_gpt.py (a name ending in .py), its code archive (export/unpack.h)
// is listed instead, file by file with its size.
int cmd_inspect(const std::string& path, bool codecs);
// `pgolf unpack`: extracts the code archive of a train_gpt.py into `output`,
// a new or empty folder.
int cmd_unpack(const std::string& archive, const std::string& output);

}  // namespace pgolf
