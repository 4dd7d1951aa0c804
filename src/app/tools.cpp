#include "pgolf/app/tools.h"

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "pgolf/app/cli_options.h"
#include "pgolf/app/compare.h"
#include "pgolf/app/submit.h"
#include "pgolf/app/tool_commands.h"

namespace pgolf {
namespace {

// Stands for the first `--` after `compare` (mark_compare_separator()).
constexpr const char* kSetSeparator = "\x1f--";

void add_corpus_options(CLI::App* cmd, CorpusOptions& c) {
  cmd->add_option("--input", c.inputs, "input files: JSONL with a \"text\" field, or plain text")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--format", c.format, "auto (JSONL if the name ends in .jsonl/.json), jsonl or text")
      ->check(CLI::IsMember({"auto", "jsonl", "text"}));
  cmd->add_option("--separator", c.separator,
                  "plain text: a line equal to this ends a document (e.g. %); default: one document per file");
  cmd->add_option("--max-docs", c.max_docs, "read at most this many documents (0 = all)");
}

// The options of the tool commands, alive as long as the function that runs them.
struct ToolOptions {
  CorpusOptions corpus;
  int vocab_size = 1024;
  std::string tok_output;
  bool tok_caseops = false;
  ShardOptions shard_opts;
  std::string shard_tokenizer;
  BenchOptions bench_opts;
  std::vector<std::string> compare_runs;
  double compare_margin = kRecordMargin;
  std::string inspect_path, unpack_archive, unpack_output;
  bool inspect_codecs = false;
  SubmitOptions submit;
  DownloadOptions dl;
  ToolOptions() { dl.endpoint.clear(); }  // cmd_download: HF_ENDPOINT or the default
};

}  // namespace

void mark_compare_separator(std::vector<std::string>& args) {
  if (args.size() > 1 && args[1] == "compare") {
    const auto dashes = std::find(args.begin() + 2, args.end(), "--");
    if (dashes != args.end()) *dashes = kSetSeparator;
  }
}

std::function<std::optional<int>()> add_tool_commands(CLI::App& app, ConfigArgs& cfg_args) {
  auto o = std::make_shared<ToolOptions>();
  // The options set by the command line below, by name.
  auto& [corpus, vocab_size, tok_output, tok_caseops, shard_opts, shard_tokenizer, bench_opts, compare_runs,
         compare_margin, inspect_path, unpack_archive, unpack_output, inspect_codecs, submit_opts, dl] = *o;
  auto* tokenizer = app.add_subcommand("tokenizer", "train a SentencePiece BPE tokenizer (byte fallback, as the challenge's) on a corpus");
  add_corpus_options(tokenizer, corpus);
  tokenizer->add_option("--vocab-size", vocab_size, "number of pieces")->capture_default_str();
  tokenizer->add_flag("--caseops", tok_caseops,
                      "train on the CaseOps transform of the text (lower case plus TITLE/ALLCAPS/CAPNEXT/ESCAPE "
                      "markers, docs/MODEL.md), the markers reserved as pieces; shard with --caseops too");
  tokenizer->add_option("--output", tok_output, "model file to write, e.g. data/tokenizers/fineweb_1024_bpe.model")
      ->required();

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
  bench->add_option("--repeats", bench_opts.repeats,
                    "run the bench (with --against: the pair, alternately) this many times and print the mean, "
                    "smallest and largest step time (or ratio) over them, the spread a comparison needs")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);

  auto* data = app.add_subcommand("data", "check the shards and tokenizer of a configuration and print their stats");
  add_config_options(data, cfg_args);

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

  auto* inspect = app.add_subcommand("inspect", "list an artifact's tensors, schemes and compressed sizes, or the files "
                                                 "of the code archive in a train_gpt.py");
  inspect->add_option("path", inspect_path, "artifact or train_gpt.py")->required()->check(CLI::ExistingFile);
  inspect->add_flag("--codecs", inspect_codecs,
                    "also compress the payload with every codec (zstd-22, xz -9e, brotli-11) in every byte layout and print the sizes");

  auto* unpack = app.add_subcommand("unpack", "extract the source in a train_gpt.py (the counted code export writes next "
                                                "to an artifact) into a new folder, which then builds pgolf");
  unpack->add_option("archive", unpack_archive, "train_gpt.py")->required()->check(CLI::ExistingFile);
  unpack->add_option("--output", unpack_output, "folder to create (or an empty one)")->required();

  auto* submit = app.add_subcommand("submit", "turn finished runs of one configuration (its seeds) into a records folder: "
                                               "README.md, submission.json, the train logs and train_gpt.py");
  submit->add_option("runs", submit_opts.runs, "run folders of `pgolf train`, one per seed, of the same configuration")
      ->type_name("RUN")
      ->required()
      ->check(CLI::ExistingDirectory);
  submit->add_option("--output", submit_opts.output, "the records folder to create (new, or empty)")->required();
  submit->add_option("--name", submit_opts.name, "the submission's name (submission.json \"name\", README title)")->required();
  submit->add_option("--author", submit_opts.author, "your name")->required();
  submit->add_option("--github-id", submit_opts.github_id, "your GitHub user name")->required();
  submit->add_option("--track", submit_opts.track, "the challenge's track (its records folder)")->capture_default_str();
  submit->add_option("--date", submit_opts.date, "YYYY-MM-DD (default: today, UTC)");
  submit->footer(
      "Each run must have finished and passed every compliance check (docs/RULES.md), on the whole validation split;\n"
      "the runs may differ in SEED, RUN_ID and LOG_DIR only, and their train_gpt.py (code and configuration) must be\n"
      "identical. submission.json: author, github_id, name, date, track, val_bpb (the mean over the seeds), val_bpb_std,\n"
      "val_loss, val_loss_std, seeds, seed_results (per seed: val_loss, val_bpb, steps, artifact_bytes, code_bytes,\n"
      "total_bytes, train_time_s, eval_time_s), bytes_total, bytes_code, hardware, techniques, pgolf.\n"
      "Example: pgolf submit logs/s1337 logs/s42 logs/s2024 --output records/track_10min_16mb/2026-12-07_MyRun \\\n"
      "           --name MyRun --author 'Ada L.' --github-id ada");

  auto* download = app.add_subcommand("download", "fetch the official challenge data (shards, tokenizer) from Hugging Face");
  download->add_option("--variant", dl.variant, "dataset fineweb10B_<VARIANT>: sp1024, sp<N> or byte260 (the manifest lists them)")
      ->capture_default_str();
  download->add_option("--train-shards", dl.train_shards, "train shards 0..N-1 to fetch (~200 MB each; 0 = val only)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  download->add_option("--repo", dl.repo, "Hugging Face dataset repository")->capture_default_str();
  download->add_option("--endpoint", dl.endpoint,
                       std::string("server (default: $HF_ENDPOINT, else ") + kDefaultEndpoint + ")");
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

  return [=, &cfg_args]() -> std::optional<int> {
    const ToolOptions& t = *o;
    if (*tokenizer) return cmd_tokenizer(t.corpus, t.vocab_size, t.tok_output, t.tok_caseops);
    if (*shard) return cmd_shard(t.corpus, t.shard_tokenizer, t.shard_opts);
    if (*bench) return cmd_bench(cfg_args, t.bench_opts);
    if (*data) return cmd_data(cfg_args);
    if (*compare) {
      const auto& runs = t.compare_runs;
      const auto separator = std::find(runs.begin(), runs.end(), kSetSeparator);
      if (separator == runs.end() || separator == runs.begin() || separator + 1 == runs.end())
        throw std::invalid_argument("compare needs two sets of runs separated by --: pgolf compare RUN_A... -- RUN_B...");
      return cmd_compare({runs.begin(), separator}, {separator + 1, runs.end()}, t.compare_margin);
    }
    if (*inspect) return cmd_inspect(t.inspect_path, t.inspect_codecs);
    if (*unpack) return cmd_unpack(t.unpack_archive, t.unpack_output);
    if (*submit) return cmd_submit(t.submit);
    if (*download) return cmd_download(t.dl);
    return std::nullopt;
  };
}

}  // namespace pgolf
