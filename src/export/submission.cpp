#include "pgolf/export/submission.h"

#include <chrono>
#include <filesystem>
#include <cstdio>

#include "pgolf/export/artifact.h"
#include "pgolf/config/components.h"
#include "pgolf/config/record.h"
#include "pgolf/export/calibrate.h"
#include "pgolf/export/script.h"
#include "pgolf/data/data.h"
#include "pgolf/export/fit.h"
#include "pgolf/core/io.h"
#include "pgolf/core/runtime.h"
#include "pgolf/data/tokenizer.h"
#include "pgolf/eval/ttt.h"
#include "pgolf/model/weights.h"

namespace pgolf {
std::map<std::string, at::Tensor> gptq_hessians(GPT& model, const std::string& data_path, std::int64_t seq_len,
                                                const QuantOptions& quant, RunLog& log) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> names;
  for (const auto& p : model.parameters()) {
    const TensorPlan plan = plan_tensor(p.name, p.tensor, quant);
    if (plan.scheme == Scheme::IntRow && plan.quant.gptq) names.push_back(p.name);
  }
  if (names.empty()) return {};
  if constexpr (!kHasGptq) {
    missing_component("GPTQ");
  } else {
    log.progress("GPTQ: calibrating on " + std::to_string(quant.gptq_tokens) + " training tokens...");
    auto h = input_hessians(model, shard_files(train_pattern(data_path)), quant.gptq_tokens, seq_len, 8, names);
    log.line("gptq: Hessians of " + std::to_string(h.size()) + " matrices from " + std::to_string(quant.gptq_tokens) +
             " training tokens in " + std::to_string(static_cast<long long>(ms_since(t0))) + "ms");
    return h;
  }
}

ExportResult export_submission(GPT& model, const Config& cfg, const std::string& path, RunLog& log) {
  const auto t0 = std::chrono::steady_clock::now();
  ExportResult r;
  r.path = path;
  const std::string script = submission_script(cfg);
  r.code_bytes = script.size();
  log.progress("pruning and quantising...");
  const FitOptions budget = fit_options(cfg.export_, r.code_bytes);
  const QuantOptions quant = quant_options(cfg.export_, cfg.qat);
  const Codec codec = cfg.export_.artifact_codec;
  for (const auto& p : model.parameters())
    if (!at::isfinite(p.tensor).all().item<bool>())
      throw std::runtime_error("cannot export: weight '" + p.name + "' holds non-finite values (NaN or infinity); nothing is written");
  const std::string record = pack_record(format_record(model_record(cfg)), codec);
  const auto calibration_start = std::chrono::steady_clock::now();
  const std::map<std::string, at::Tensor> hessians = gptq_hessians(model, cfg.run.data_path, cfg.train.train_seq_len, quant, log);
  r.calibration_ms = ms_since(calibration_start);
  const FitResult fit = fit_export(model.parameters(), hessians,
                                   {quant, cfg.export_.prune_frac}, budget, codec, kArtifactHeaderBytes + record.size(), log);
  // What the artifact will decode to must be finite too: fp16 overflows past
  // 65,504 (a passthrough value, or a row scale) to infinity.
  for (const QuantTensor& t : fit.tensors)
    if (!at::isfinite(dequantize(t)).all().item<bool>())
      throw std::runtime_error("cannot export: '" + t.name + "' stored " + format_tensor_plan(t.plan) +
                               " decodes to non-finite values (its magnitudes overflow fp16, whose largest value is 65504); "
                               "nothing is written");
  r.artifact_bytes = write_artifact_packed(path, fit.payload.size(), record, fit.packed, codec);
  r.code_path = (std::filesystem::path(path).parent_path() / "train_gpt.py").string();
  write_file_atomic(r.code_path, script);
  r.export_ms = ms_since(t0);
  r.fitted = fit.changed;
  if (fit.changed)
    log.line("fit: chosen " + describe_choice(fit.choice));
  std::vector<int> widths;
  for (const QuantTensor& t : fit.tensors)
    if (t.plan.scheme == Scheme::IntRow) widths.push_back(static_cast<int>(t.plan.quant.bits));
  const std::vector<std::string> sizes = ScoreLines(cfg.eval.log_compat)
                                             .sizes(int_widths_label(widths), codec_name(codec), r.artifact_bytes, r.total(), path);
  log.line(sizes[0]);
  log.line("Code size: " + std::to_string(r.code_bytes) + " bytes (" + r.code_path + ": the source of pgolf's train, "
           "eval and export path, minified, as an xz tar in a latin-1 string, and the configuration)");
  for (std::size_t i = 1; i < sizes.size(); ++i) log.line(sizes[i]);
  const long long left = static_cast<long long>(budget.budget) - static_cast<long long>(r.total());
  char buf[160];
  std::snprintf(buf, sizeof buf, "export_time:%.0fms budget:%llu budget_left:%lld bytes", r.export_ms,
                static_cast<unsigned long long>(budget.budget), left);
  log.line(buf);
  if (left < 0)
    log.line("WARNING: total submission size " + std::to_string(r.total()) + " bytes is OVER the " +
             std::to_string(budget.budget) + "-byte budget by " + std::to_string(-left) +
             " bytes (EXPORT_FIT=0): this artifact cannot be submitted");
  log.metric("export", {{"artifact_bytes", double(r.artifact_bytes)}, {"code_bytes", double(r.code_bytes)},
                        {"total_bytes", double(r.total())}, {"budget_left", double(left)}, {"export_ms", r.export_ms}});
  return r;
}

ScoringData load_scoring_data(const Config& cfg, at::Device device) {
  ValidationSplit split = load_validation(cfg.run.data_path, cfg.train.train_seq_len, cfg.model.vocab_size);
  const std::int64_t limit = cfg.eval.eval_tokens_limit;
  const bool subset = limit > 0 && limit + 1 < static_cast<std::int64_t>(split.tokens.size());
  if (subset) {  // the first `limit` targets: their inputs and targets are the first limit + 1 tokens
    split.tokens.resize(static_cast<std::size_t>(limit + 1));
    if (!split.bytes.empty()) split.bytes.resize(split.tokens.size());
  }
  const TargetBytes bytes = target_bytes(split, cfg.run.tokenizer_path, cfg.model.vocab_size);
  return {to_tensor(split.tokens).to(device), to_tensor(bytes.bytes).to(device), bytes.source, subset ? limit : 0};
}

TimedScore sliding_score(GPT& model, const EvalConfig& cfg, const ScoringData& data, RunLog& log, const std::string& what,
                         Dist& dist) {
  if (cfg.eval_seq_len <= 0) throw std::logic_error("sliding_score: EVAL_SEQ_LEN is 0; fill_derived() resolves it");
  const auto t0 = std::chrono::steady_clock::now();
  auto progress = [&](std::int64_t done, std::int64_t total) {
    log.progress(what + ": batch " + std::to_string(done) + "/" + std::to_string(total));
  };
  const EvalSums e = all_reduce(evaluate_sliding(model, data.val, data.bytes, cfg.eval_seq_len, cfg.eval_stride,
                                                 cfg.eval_batch_seqs, dist.rank(), dist.world_size(), progress),
                                dist, model.options().device, what);
  return {e, ms_since(t0)};
}

void log_score(RunLog& log, const std::vector<std::string>& lines, const std::string& label, const TimedScore& s) {
  for (const std::string& line : lines) log.line(line);
  log.metric(label, {{"val_loss", s.sums.val_loss()}, {"val_bpb", s.sums.val_bpb()}, {"eval_ms", s.ms}, {"tokens", s.sums.tokens}});
}

TimedScore score_artifact(GPT& restored, const EvalConfig& cfg, const ScoringData& data, RunLog& log, Dist& dist) {
  const ScoreLines lines(cfg.log_compat, data.subset_tokens);
  const auto t0 = std::chrono::steady_clock::now();
  log.progress("final_roundtrip...");
  const EvalSums rt = all_reduce(evaluate_standard(restored, data.val, data.bytes, cfg.eval_seq_len, cfg.eval_batch_seqs,
                                                   dist.rank(), dist.world_size()),
                                 dist, restored.options().device, "final_roundtrip");
  const TimedScore roundtrip{rt, ms_since(t0)};
  log_score(log, lines.roundtrip(roundtrip), "final_roundtrip", roundtrip);
  const TimedScore sliding = sliding_score(restored, cfg, data, log, "final_sliding_window", dist);
  log_score(log, lines.sliding(sliding, cfg.eval_stride, cfg.eval_seq_len, cfg.eval_batch_seqs), "final_sliding_window", sliding);
  return sliding;
}

EvalSums score_prequant(GPT& model, const EvalConfig& cfg, const ScoringData& data, RunLog& log, Dist& dist) {
  const TimedScore s = sliding_score(model, cfg, data, log, "final_prequant_sliding", dist);
  log_score(log, ScoreLines("none", data.subset_tokens).score("final_prequant_sliding", s, cfg.eval_stride),
            "final_prequant_sliding", s);
  return s.sums;
}

namespace {

// evaluate_ttt() where this build has test-time training (config/components.h).
TttScores ttt_scores(GPT& model, const ScoringData& data, const TttOptions& opts, Dist& dist,
                     const std::function<void(const TttProgress&)>& progress) {
  if constexpr (kHasTtt)
    return evaluate_ttt(model, data.val, data.bytes, opts, dist, progress);
  else
    missing_component("TTT");
}

}  // namespace

EvalSums score_ttt(GPT& model, const TttOptions& opts, const ScoringData& data, RunLog& log, const std::string& label,
                   Dist& dist) {
  const auto t0 = std::chrono::steady_clock::now();
  bool estimated = false;
  auto progress = [&](const TttProgress& p) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s: docs %lld/%lld %.0fs, about %.0fs left", label.c_str(),
                  static_cast<long long>(p.docs_done), static_cast<long long>(p.docs_total), p.seconds, p.eta_seconds);
    log.progress(buf);
    if (estimated) return;
    estimated = true;  // after the first (longest) batch: the estimate by tokens still to process
    std::snprintf(buf, sizeof buf, "%s:estimate total:%.0fs after %lld docs in %.1fs", label.c_str(), p.seconds + p.eta_seconds,
                  static_cast<long long>(p.docs_done), p.seconds);
    std::string line = buf;
    if (opts.budget_seconds > 0 && p.seconds + p.eta_seconds > opts.budget_seconds)
      line += " (over EVAL_BUDGET_SECONDS=" + shortest_decimal(opts.budget_seconds) +
              ": documents left when it runs out are scored without adaptation)";
    log.line(line);
  };
  const TttScores s = ttt_scores(model, data, opts, dist, progress);
  const EvalSums e = all_reduce(s.sums, dist, model.options().device, label);
  log.line(label + ":docs adapted:" + std::to_string(s.adapted_docs) + " unadapted:" + std::to_string(s.unadapted_docs) +
           " (rank 0) global_phases:" + std::to_string(s.global_phases));
  const TimedScore scored{e, ms_since(t0)};
  log_score(log, ScoreLines("none", data.subset_tokens).score(label, scored), label, scored);
  return e;
}

ModelFile read_model_file(const std::string& path) {
  ModelFile f;
  f.path = path;
  ModelRecord r;
  if (ends_with(path, ".safetensors")) {
    std::map<std::string, std::string> metadata;
    f.weights = load_safetensors(path, &metadata);
    r = record_from_metadata(metadata, path);
  } else {
    ArtifactContents a = read_artifact(path);
    f.quantized = std::move(a.tensors);
    r = parse_record(a.record_text, path);
  }
  if (!r.values.empty()) f.record = std::move(r);
  return f;
}

void load_model_file(GPT& model, const ModelFile& file) {
  if (file.is_artifact())
    load_artifact_into(model, file.quantized, file.path);
  else
    copy_weights(model, file.weights, "weights file '" + file.path + "'");
}

void load_model_file(GPT& model, const std::string& path) { load_model_file(model, read_model_file(path)); }

std::optional<ModelRecord> read_model_record(const std::string& path) { return read_model_file(path).record; }

}  // namespace pgolf
