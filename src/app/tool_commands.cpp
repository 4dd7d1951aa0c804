#include "pgolf/app/tool_commands.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "pgolf/app/compare.h"
#include "pgolf/core/io.h"
#include "pgolf/core/run.h"
#include "pgolf/core/runtime.h"
#include "pgolf/data/caseops.h"
#include "pgolf/data/data.h"
#include "pgolf/data/tokenizer.h"
#include "pgolf/data/tokenizer_check.h"
#include "pgolf/data/tokenizer_train.h"
#include "pgolf/eval/eval.h"
#include "pgolf/export/artifact.h"
#include "pgolf/export/layout.h"
#include "pgolf/export/submission.h"
#include "pgolf/export/unpack.h"

namespace pgolf {

int cmd_tokenizer(const CorpusOptions& corpus, int vocab_size, const std::string& output, bool caseops) {
  // Before the training: the folder the model goes to exists and takes files.
  const std::filesystem::path folder = std::filesystem::absolute(output).parent_path();
  make_dirs(folder.string());
  if (::access(folder.c_str(), W_OK) != 0)
    throw std::runtime_error("cannot write the tokenizer into '" + folder.string() + "' (no write permission): choose another --output");
  DocumentReader reader(corpus);
  std::int64_t docs = 0;
  auto next = [&](std::string& d) {
    if (!reader.next(d)) return false;
    if (caseops) d = caseops_encode(d).text;
    ++docs;
    return true;
  };
  train_tokenizer(next, vocab_size, output, available_cores(), caseops ? caseops_markers() : std::vector<std::string>{});
  Tokenizer tok(output);
  std::cout << "tokenizer: " << output << " pieces:" << tok.vocab_size() << " trained_on_docs:" << docs << "\n";
  if (tok.vocab_size() < vocab_size)
    std::cout << "WARNING: asked for " << vocab_size << " pieces, made " << tok.vocab_size()
              << ": BPE stops merging when no pair of pieces is left to merge, so this corpus is too small for "
              << vocab_size << " pieces; train on more text, or ask for fewer pieces\n";
  return 0;
}

int cmd_shard(const CorpusOptions& corpus, const std::string& tokenizer, const ShardOptions& opts) {
  Tokenizer tok(tokenizer);
  DocumentReader reader(corpus);
  ShardStats stats = make_shards(reader, tok, opts);
  std::cout << "shards: " << opts.output_dir << "\n" << format_stats(stats);
  return 0;
}

int cmd_bench(const ConfigArgs& args, const BenchOptions& opts) {
  Config cfg = resolve_config(args);
  const int threads = init_threads(cfg.runtime.num_threads);
  auto run = [&](const Config& c, const std::string& label) {
    std::cout << "bench" << label << ": NUM_LAYERS=" << c.model.num_layers << " MODEL_DIM=" << c.model.model_dim
              << " TRAIN_BATCH_TOKENS=" << c.train.train_batch_tokens << " TRAIN_SEQ_LEN=" << c.train.train_seq_len
              << " world_size:" << opts.world_size << " threads:" << threads << std::endl;
    for (const std::string& note : ignored_cuda_switches(c.runtime, select_device(c.runtime.device))) std::cout << note << "\n";
    BenchResult r = run_bench(c, opts);
    std::cout << format_bench(r);
    return r;
  };
  ConfigArgs with = args;
  std::string label = " with";
  for (const auto& kv : opts.against) {
    with.sets.push_back(kv);
    label += " " + kv;
  }
  const Config second_cfg = opts.against.empty() ? cfg : resolve_config(with);
  std::vector<BenchResult> runs;
  std::vector<std::pair<BenchResult, BenchResult>> pairs;
  for (int i = 1; i <= opts.repeats; ++i) {
    const std::string repeat = opts.repeats > 1 ? " (repeat " + std::to_string(i) + "/" + std::to_string(opts.repeats) + ")" : "";
    runs.push_back(run(cfg, repeat));
    if (opts.against.empty()) continue;
    pairs.emplace_back(runs.back(), run(second_cfg, label + repeat));
    std::cout << format_bench_ratio(pairs.back().first, pairs.back().second);
  }
  if (opts.repeats > 1) std::cout << (pairs.empty() ? format_bench_repeats(runs) : format_bench_repeats(pairs));
  return 0;
}

int cmd_compare(const std::vector<std::string>& runs_a, const std::vector<std::string>& runs_b, double margin) {
  if (!std::isfinite(margin)) throw std::invalid_argument("--margin must be a finite number of nats");
  auto read = [](const std::vector<std::string>& paths) {
    std::vector<RunResult> runs;
    for (const std::string& p : paths) runs.push_back(read_run_result(p));
    return runs;
  };
  std::cout << format_comparison(read(runs_a), read(runs_b), margin);
  return 0;
}

int cmd_data(const ConfigArgs& args) {
  Config cfg = resolve_config(args);
  std::int64_t train_tokens = 0;
  std::vector<std::int64_t> counts(static_cast<std::size_t>(cfg.model.vocab_size), 0);
  auto train = shard_files(train_pattern(cfg.run.data_path));
  for (const auto& f : train) {
    Shard s(f);
    s.check_token_ids(cfg.model.vocab_size);
    train_tokens += static_cast<std::int64_t>(s.num_tokens());
    for (std::size_t i = 0; i < s.num_tokens(); ++i) ++counts[s.tokens()[i]];
  }
  const ValidationSplit split = load_validation(cfg.run.data_path, cfg.train.train_seq_len, cfg.model.vocab_size);
  const std::vector<std::uint16_t>& val = split.tokens;
  const TargetBytes bytes = target_bytes(split, cfg.run.tokenizer_path, cfg.model.vocab_size);
  // The byte counts below are right only with the tokenizer that made the shards.
  const std::string skipped = check_tokenizer_unless_disabled(cfg.run.tokenizer_path, cfg.run.data_path, cfg.run.tokenizer_check);
  if (!skipped.empty()) std::cout << skipped << "\n";
  // The val_bpb denominator: bytes of every scored target (positions 1..N-1).
  const std::int64_t val_bytes = std::accumulate(bytes.bytes.begin(), bytes.bytes.end(), std::int64_t{0});
  Tokenizer tok(cfg.run.tokenizer_path);
  std::cout << "data: " << cfg.run.data_path << "\n"
            << "train: shards:" << train.size() << " tokens:" << train_tokens << "\n"
            << "val: scored_tokens:" << val.size() - 1 << " bytes:" << val_bytes
            << " bytes_per_token:" << static_cast<double>(val_bytes) / static_cast<double>(val.size() - 1)
            << " bytes_from:" << bytes.source << "\n"
            << "unigram_baseline val_bpb:" << unigram_bpb(counts, val, bytes.bytes) << "\n"
            << "tokenizer: " << cfg.run.tokenizer_path << " pieces:" << tok.vocab_size() << "\n";
  return 0;
}

int cmd_download(DownloadOptions opts) {
  auto env = [](const char* name) { return std::string(std::getenv(name) ? std::getenv(name) : ""); };
  if (opts.endpoint.empty()) opts.endpoint = env("HF_ENDPOINT").empty() ? kDefaultEndpoint : env("HF_ENDPOINT");
  opts.token = env("HF_TOKEN");
  const std::string progress = env("PROGRESS").empty() ? "auto" : env("PROGRESS");
  if (progress != "auto" && progress != "on" && progress != "off")
    throw std::invalid_argument("PROGRESS must be auto, on or off, not '" + progress + "'");
  opts.progress = progress_wanted(progress, ::isatty(1), [](const char* name) -> const char* { return std::getenv(name); });
  const DownloadSummary s = download_dataset(opts, std::cout);
  std::cout << "DATA_PATH=" << s.data_path << "\n";
  if (!s.tokenizer_path.empty()) std::cout << "TOKENIZER_PATH=" << s.tokenizer_path << "\n";
  return 0;
}

namespace {

// `pgolf inspect` of a train_gpt.py: the files of its code archive, their sizes and the total.
int inspect_code_archive(const std::string& path) {
  std::uint64_t total = 0, files = 0;
  for (const ArchiveMember& m : read_code_archive(path)) {
    if (m.dir) continue;
    std::printf("%10zu  %s\n", m.data.size(), printable(m.path).c_str());
    total += m.data.size();
    ++files;
  }
  std::printf("code archive in %s: %llu files, %llu bytes; the script: %llu bytes\n", path.c_str(),
              static_cast<unsigned long long>(files), static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(std::filesystem::file_size(path)));
  return 0;
}

}  // namespace

int cmd_inspect(const std::string& path, bool codecs) {
  if (ends_with(path, ".py")) return inspect_code_archive(path);
  const ArtifactContents artifact = read_artifact(path);
  const std::vector<QuantTensor>& tensors = artifact.tensors;
  const Codec codec = artifact.codec;
  const std::uint64_t file_bytes = std::filesystem::file_size(path);
  std::vector<std::uint64_t> packed;
  std::uint64_t packed_sum = 0, raw_sum = 0, params = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (::isatty(2)) std::cerr << "\rcompressing tensor " << i + 1 << "/" << tensors.size() << std::flush;
    packed.push_back(compressed_record_size(tensors[i], codec));
    packed_sum += packed.back();
  }
  if (::isatty(2)) std::cerr << "\r\033[K";
  std::printf("%-32s %-14s %-28s %12s %12s %7s\n", "name", "shape", "scheme", "raw_bytes", "packed_bytes", "share");
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const std::string scheme = format_tensor_plan(t.plan) + (t.lqer.rank > 0 ? "+lqer" + std::to_string(t.lqer.rank) : "");
    const std::uint64_t raw = t.data.numel() * t.data.element_size() + (t.scale.defined() ? t.scale.numel() * 2 : 0);
    raw_sum += raw;
    params += static_cast<std::uint64_t>(t.data.numel());
    std::printf("%-32s %-14s %-28s %12llu %12llu %6.2f%%\n", printable(t.name).c_str(), c10::str(at::IntArrayRef(t.shape)).c_str(),
                scheme.c_str(), static_cast<unsigned long long>(raw), static_cast<unsigned long long>(packed[i]),
                100.0 * static_cast<double>(packed[i]) / static_cast<double>(packed_sum));
  }
  // The counted code is the train_gpt.py export wrote next to the artifact.
  const std::string script = (std::filesystem::path(path).parent_path() / "train_gpt.py").string();
  const bool has_code = std::filesystem::exists(script);
  const std::uint64_t code = has_code ? std::filesystem::file_size(script) : 0;
  char buf[512];
  std::snprintf(buf, sizeof buf, "tensors:%zu params:%llu raw_bytes:%llu codec:%s artifact_bytes:%llu code_bytes:%llu%s total:%llu budget:%llu %s\n",
                tensors.size(), static_cast<unsigned long long>(params), static_cast<unsigned long long>(raw_sum),
                codec_name(codec), static_cast<unsigned long long>(file_bytes), static_cast<unsigned long long>(code),
                has_code ? "" : " (no train_gpt.py next to the artifact)", static_cast<unsigned long long>(file_bytes + code),
                static_cast<unsigned long long>(kSubmissionBudget), file_bytes + code <= kSubmissionBudget ? "(fits)" : "(OVER BUDGET)");
  std::cout << buf << "(packed_bytes compresses each tensor alone with the artifact's codec; share is of their sum)\n";
  std::string record;
  for (const auto& [k, v] : parse_record(artifact.record_text, path).values) record += " " + k + "=" + v;
  std::cout << "version:" << artifact.version << " model record (" << artifact.record_bytes
            << " bytes):" << (record.empty() ? " none (written by an older pgolf)" : record) << "\n";
  if (codecs) {
    std::printf("\n%-18s %12s %12s %12s %12s\n", "layout", "raw", "zstd-22", "xz-9e", "brotli-11");
    for (Layout l : all_layouts()) {
      const std::string bytes = layout_payload(tensors, l);
      std::printf("%-18s %12zu", layout_name(l), bytes.size());
      for (Codec c : {Codec::Zstd, Codec::Xz, Codec::Brotli}) {
        if (::isatty(2)) std::cerr << "\r" << layout_name(l) << " " << codec_name(c) << "..." << std::flush;
        const std::size_t n = compress(bytes, c).size();
        if (::isatty(2)) std::cerr << "\r\033[K";
        std::printf(" %12zu", n);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  return 0;
}

int cmd_unpack(const std::string& archive, const std::string& output) {
  std::uint64_t files = 0;
  for (const ArchiveMember& m : unpack_code_archive(archive, output)) files += m.dir ? 0 : 1;
  std::cout << "unpacked " << files << " files of " << archive << " into " << output << "\n";
  return 0;
}

}  // namespace pgolf
