// pgolf: wires the subcommands of src/app/commands.cpp to the command line.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "pgolf/app/commands.h"
#include "pgolf/app/compare.h"
#include "pgolf/app/provenance.h"
#include "pgolf/dist/dist.h"
#include "pgolf/core/runtime.h"

namespace {

void add_config_options(CLI::App* cmd, pgolf::ConfigArgs& args) {
  cmd->add_option("--config", args.files, "KEY=VALUE config file(s), applied in order (see configs/)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", args.sets, "KEY=VALUE override, applied last (repeatable)");
  cmd->footer(
      "Configuration precedence: defaults < --config FILE < environment < --set KEY=VALUE.\n"
      "In a file, '#' after white space starts a comment (KEY=12 # note sets 12); --set and environment\n"
      "values are literal, and a '#' comment there is an error.\n"
      "The keys most runs set (environment variables of the same names; type, default, meaning);\n"
      "`pgolf config --list` documents all " + std::to_string(pgolf::config_keys().size()) + " of them:\n\n" +
      pgolf::describe_config_keys(pgolf::KeySelection::Common));
}

void add_corpus_options(CLI::App* cmd, pgolf::CorpusOptions& c) {
  cmd->add_option("--input", c.inputs, "input files: JSONL with a \"text\" field, or plain text")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--format", c.format, "auto (JSONL if the name ends in .jsonl/.json), jsonl or text")
      ->check(CLI::IsMember({"auto", "jsonl", "text"}));
  cmd->add_option("--separator", c.separator,
                  "plain text: a line equal to this ends a document (e.g. %); default: one document per file");
  cmd->add_option("--max-docs", c.max_docs, "read at most this many documents (0 = all)");
}

// `pgolf compare A... -- B...`: CLI11 reads everything after `--` as
// positional (a --margin there would be taken for a run), so the first `--`
// after `compare` is swapped for this marker, which stays among the runs and
// splits them into the two sets.
constexpr const char* kSetSeparator = "\x1f--";

std::vector<std::string> mark_compare_separator(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  if (args.size() > 1 && args[1] == "compare") {
    const auto dashes = std::find(args.begin() + 2, args.end(), "--");
    if (dashes != args.end()) *dashes = kSetSeparator;
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pgolf: train, compress and score a parameter-golf language model (see README.md)"};
  app.set_version_flag("--version", [] { return pgolf::version_text(); },
                       "print pgolf's version, the commit and checksum of its sources, and the LibTorch and CUDA it was built with");
  app.require_subcommand(1);

  pgolf::ConfigArgs cfg_args;
  bool list = false;
  auto* config = app.add_subcommand("config", "print the resolved configuration and where each value came from");
  add_config_options(config, cfg_args);
  config->add_flag("--list", list, "document every key instead");

  auto* info = app.add_subcommand("info", "print the LibTorch version, CUDA support and thread count");

  pgolf::CorpusOptions corpus;
  int vocab_size = 1024;
  std::string tok_output;
  bool tok_caseops = false;
  auto* tokenizer = app.add_subcommand("tokenizer", "train a SentencePiece BPE tokenizer (byte fallback, as the challenge's) on a corpus");
  add_corpus_options(tokenizer, corpus);
  tokenizer->add_option("--vocab-size", vocab_size, "number of pieces")->capture_default_str();
  tokenizer->add_flag("--caseops", tok_caseops,
                      "train on the CaseOps transform of the text (lower case plus TITLE/ALLCAPS/CAPNEXT/ESCAPE "
                      "markers, docs/MODEL.md), the markers reserved as pieces; shard with --caseops too");
  tokenizer->add_option("--output", tok_output, "model file to write, e.g. data/tokenizers/fineweb_1024_bpe.model")
      ->required();

  pgolf::ShardOptions shard_opts;
  std::string shard_tokenizer;
  auto* shard = app.add_subcommand("shard", "tokenise a corpus into fineweb_{train,val}_NNNNNN.bin shards");
  add_corpus_options(shard, corpus);
  shard->add_option("--tokenizer", shard_tokenizer, "SentencePiece model")->required()->check(CLI::ExistingFile);
  shard->add_option("--output-dir", shard_opts.output_dir, "folder to create (becomes DATA_PATH)")->required();
  shard->add_option("--val-docs", shard_opts.val_docs, "the first N documents form the val split")
      ->capture_default_str();
  shard->add_option("--shard-tokens", shard_opts.shard_tokens, "tokens per shard")->capture_default_str();
  shard->add_option("--shuffle-seed", shard_opts.shuffle_seed,
                    "shuffle documents with this seed before splitting (0 = keep order; holds the corpus in memory)");
  shard->add_flag("--force", shard_opts.force, "replace the output folder if it exists");
  shard->add_flag("--byte-sidecars", shard_opts.byte_sidecars,
                  "also write fineweb_val_bytes_NNNNNN.bin: the original text's UTF-8 bytes per val token, which "
                  "val_bpb then counts instead of the tokenizer's tables");
  shard->add_flag("--caseops", shard_opts.caseops,
                  "tokenise the CaseOps transform of each document (needs a `pgolf tokenizer --caseops` model); "
                  "implies --byte-sidecars, so val_bpb counts the original text's bytes");

  auto* train = app.add_subcommand("train", "train the configured model and save its weights under LOG_DIR/RUN_ID "
                                             "(SIGINT/Ctrl-C or SIGTERM: stop after the current step, save the weights "
                                             "and, when checkpoints are on, a checkpoint; exit 130 or 143)");
  add_config_options(train, cfg_args);
  train->add_option_function<std::string>(
           "--init-weights", [&](const std::string& f) { cfg_args.sets.push_back("INIT_WEIGHTS=" + f); },
           "start from this .safetensors file (same as --set INIT_WEIGHTS=FILE)")
      ->check(CLI::ExistingFile);
  std::string resume_dir;
  train->add_option("--resume", resume_dir,
                    "continue the run in RUN_DIR from its checkpoint.safetensors (CHECKPOINT_EVERY, CHECKPOINT_MINUTES), "
                    "e.g. after a crash: RUN_DIR/config.env is read before --config and --set, keys that change "
                    "results must keep their values, and logs go on in RUN_DIR")
      ->type_name("RUN_DIR")
      ->check(CLI::ExistingDirectory);
  bool overwrite = false;
  train->add_flag("--overwrite", overwrite,
                  "replace an existing run folder LOG_DIR/RUN_ID (its files are removed first); without it a new run "
                  "refuses a folder that exists")
      ->excludes("--resume");

  pgolf::BenchOptions bench_opts;
  auto* bench = app.add_subcommand("bench", "time training steps (forward, backward, optimiser) on random tokens");
  add_config_options(bench, cfg_args);
  bench->add_option("--steps", bench_opts.steps, "timed steps")->capture_default_str()->check(CLI::PositiveNumber);
  bench->add_option("--warmup", bench_opts.warmup, "untimed steps first")->capture_default_str()->check(CLI::NonNegativeNumber);
  bench->add_option("--world-size", bench_opts.world_size,
                    "time one rank's share of a step of this many ranks: TRAIN_BATCH_TOKENS/N tokens in 8/N "
                    "micro-steps and 1/N of the Newton-Schulz work (8 = each GPU of an 8-GPU run)")
      ->capture_default_str()
      ->check(CLI::IsMember({1, 2, 4, 8}));
  bench->add_option("--peak-tflops", bench_opts.peak_tflops,
                    "peak bf16 TFLOP/s for MFU (default: known H100/H200/A100 peaks; none on CPU)")
      ->check(CLI::PositiveNumber);
  bench->add_option("--against", bench_opts.against,
                    "KEY=VALUE (repeatable): bench the configuration as given, then with these values set (e.g. "
                    "FUSED_KERNELS=1 or CUDA_GRAPHS=1), and print both and their ratio");

  std::string model_path;
  auto* eval = app.add_subcommand("eval", "score an artifact (or .safetensors weights) with the sliding-window evaluation");
  eval->add_option("path", model_path,
                   "artifact or .safetensors file; it records its model and scoring keys (the model section, "
                   "TRAIN_SEQ_LEN, EVAL_SEQ_LEN, EVAL_STRIDE), which apply without a config; a config that sets "
                   "them otherwise is refused unless OVERRIDE_RECORDED=1")
      ->required()
      ->check(CLI::ExistingFile);
  add_config_options(eval, cfg_args);

  std::string export_weights, export_output;
  auto* exp = app.add_subcommand("export", "prune, quantise and pack weights into an artifact");
  exp->add_option("--weights", export_weights,
                  ".safetensors to export (default: the initial weights, for sizing); the model keys it records apply "
                  "as with `pgolf eval`")
      ->check(CLI::ExistingFile);
  exp->add_option("--output", export_output, "artifact file to write")->required();
  double export_random_std = 0;
  exp->add_option("--random-std", export_random_std,
                  "for sizing: replace every matrix by Gaussian rows of this standard deviation (seeded by SEED)")
      ->check(CLI::PositiveNumber);
  add_config_options(exp, cfg_args);

  auto* inspect = app.add_subcommand("inspect", "list an artifact's tensors, schemes and compressed sizes");
  inspect->add_option("path", model_path, "artifact file")->required()->check(CLI::ExistingFile);
  bool inspect_codecs = false;
  inspect->add_flag("--codecs", inspect_codecs,
                    "also compress the payload with every codec (zstd-22, xz -9e, brotli-11) in every byte layout and print the sizes");

  auto* data = app.add_subcommand("data", "check the shards and tokenizer of a configuration and print their stats");
  add_config_options(data, cfg_args);

  std::vector<std::string> compare_runs;
  double compare_margin = pgolf::kRecordMargin;
  auto* compare = app.add_subcommand("compare", "compare the final val_loss of two sets of runs (e.g. seeds): "
                                                 "means, spreads and whether A beats B by a margin (Welch t-test)");
  compare->add_option("runs", compare_runs,
                      "set A's runs, then --, then set B's: each a run folder of `pgolf train` or its metrics.jsonl "
                      "(the last final event gives val_loss, val_bpb, steps, train time and total_bytes; the "
                      "folder's config.env gives SEED)")
      ->type_name("RUN")
      ->required();
  compare->add_option("--margin", compare_margin,
                      "nats of val_loss by which A must improve on B (the challenge's bar for a new record)")
      ->capture_default_str();
  compare->footer(
      "The test: one-sided Welch t-test of H0: mean_B - mean_A <= margin against H1: mean_B - mean_A > margin,\n"
      "on val_loss, with sample standard deviations s (n - 1) and v = s^2 / n per set:\n"
      "  t = ((mean_B - mean_A) - margin) / sqrt(v_A + v_B),\n"
      "  df = (v_A + v_B)^2 / (v_A^2 / (n_A - 1) + v_B^2 / (n_B - 1))   (Welch-Satterthwaite),\n"
      "  p = P(T_df > t).\n"
      "The last line says whether p < 0.01, the challenge's bar for a new record (0.005 nats better at p < 0.01,\n"
      "over several seeds). Each set needs at least 2 runs for a p-value, and some spread in either set.\n"
      "Example: pgolf compare logs/new_seed1337 logs/new_seed42 logs/new_seed2024 -- logs/old_seed1337 logs/old_seed42\n"
      "The exit code is 0 whatever the verdict, 1 when a run cannot be read (e.g. it did not finish).");

  pgolf::DownloadOptions dl;
  dl.endpoint.clear();  // cmd_download: HF_ENDPOINT or the default
  auto* download = app.add_subcommand("download", "fetch the official challenge data (shards, tokenizer) from Hugging Face");
  download->add_option("--variant", dl.variant, "dataset fineweb10B_<VARIANT>: sp1024, sp<N> or byte260 (the manifest lists them)")
      ->capture_default_str();
  download->add_option("--train-shards", dl.train_shards, "train shards 0..N-1 to fetch (~200 MB each; 0 = val only)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  download->add_option("--repo", dl.repo, "Hugging Face dataset repository")->capture_default_str();
  download->add_option("--endpoint", dl.endpoint,
                       std::string("server (default: $HF_ENDPOINT, else ") + pgolf::kDefaultEndpoint + ")");
  download->add_option("--out", dl.out, "folder to fill: datasets/fineweb10B_<VARIANT>/, tokenizers/, manifest.json")
      ->capture_default_str();
  download->add_option("--jobs", dl.jobs, "parallel transfers")->capture_default_str()->check(CLI::PositiveNumber);
  download->footer(
      "Files come from {endpoint}/datasets/{repo}/resolve/main/datasets/...; see docs/DATA.md.\n"
      "Reruns skip files that are in place and valid and resume <file>.part leftovers.\n"
      "Environment variables:\n"
      "  HF_ENDPOINT  server when --endpoint is not given (a mirror)\n"
      "  HF_TOKEN     sent as 'Authorization: Bearer <token>' (private or gated repositories)\n"
      "  PROGRESS     auto (default: only on an interactive terminal), on or off: the in-place progress line");

  std::vector<std::string> args = mark_compare_separator(argc, argv);
  std::vector<char*> arg_pointers;
  for (std::string& a : args) arg_pointers.push_back(a.data());
  CLI11_PARSE(app, argc, arg_pointers.data());
  try {
    if (*config) return pgolf::cmd_config(cfg_args, list);
    if (*info) return pgolf::cmd_info();
    if (*tokenizer) return pgolf::cmd_tokenizer(corpus, vocab_size, tok_output, tok_caseops);
    if (*shard) return pgolf::cmd_shard(corpus, shard_tokenizer, shard_opts);
    if (*train) return pgolf::cmd_train(cfg_args, resume_dir, overwrite);
    if (*bench) return pgolf::cmd_bench(cfg_args, bench_opts);
    if (*eval) return pgolf::cmd_eval(cfg_args, model_path);
    if (*exp) return pgolf::cmd_export(cfg_args, export_weights, export_output, export_random_std);
    if (*inspect) return pgolf::cmd_inspect(model_path, inspect_codecs);
    if (*data) return pgolf::cmd_data(cfg_args);
    if (*compare) {
      const auto separator = std::find(compare_runs.begin(), compare_runs.end(), kSetSeparator);
      if (separator == compare_runs.end() || separator == compare_runs.begin() || separator + 1 == compare_runs.end())
        throw std::invalid_argument("compare needs two sets of runs separated by --: pgolf compare RUN_A... -- RUN_B...");
      return pgolf::cmd_compare({compare_runs.begin(), separator}, {separator + 1, compare_runs.end()}, compare_margin);
    }
    if (*download) return pgolf::cmd_download(dl);
  } catch (const pgolf::DistError& e) {
    // A peer is dead or hung: leave without running the process group's
    // destructors, which would wait on it.
    std::cerr << "pgolf: error: " << e.what() << std::endl;
    std::cout.flush();
    std::_Exit(1);
  } catch (const std::exception& e) {
    std::cerr << "pgolf: error: " << pgolf::error_message(e) << "\n";
    return 1;
  }
  return 0;
}
