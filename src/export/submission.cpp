#include "pgolf/export/submission.h"

#include <chrono>
#include <filesystem>
#include <cstdio>

#include "pgolf/export/artifact.h"
#include "pgolf/config/record.h"
#include "pgolf/export/calibrate.h"
#include "pgolf/export/code_archive.h"
#include "pgolf/data/data.h"
#include "pgolf/export/fit.h"
#include "pgolf/core/io.h"
#include "pgolf/core/runtime.h"
#include "pgolf/data/tokenizer.h"
#include "pgolf/eval/ttt.h"
#include "pgolf/model/weights.h"

namespace pgolf {
const CodeArchive& code() {
  static const CodeArchive archive = code_archive(kCodeCodec);
  return archive;
}

std::uint64_t code_bytes() { return code().bytes.size(); }

std::map<std::string, at::Tensor> gptq_hessians(GPT& model, const std::string& data_path, std::int64_t seq_len,
                                                const QuantOptions& quant, RunLog& log) {
  if (!uses_gptq(quant)) return {};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> names;
  for (const auto& p : model.parameters()) {
    const TensorPlan plan = plan_tensor(p.name, p.tensor, quant);
    if (plan.scheme == Scheme::IntRow && plan.quant.gptq) names.push_back(p.name);
  }
  log.progress("GPTQ: calibrating on " + std::to_string(quant.gptq_tokens) + " training tokens...");
  auto h = input_hessians(model, shard_files(train_pattern(data_path)), quant.gptq_tokens, seq_len, 8, names);
  log.line("gptq: Hessians of " + std::to_string(h.size()) + " matrices from " + std::to_string(quant.gptq_tokens) +
           " training tokens in " + std::to_string(static_cast<long long>(ms_since(t0))) + "ms");
  return h;
}

ExportResult export_submission(GPT& model, const Config& cfg, const std::string& path, RunLog& log) {
  const auto t0 = std::chrono::steady_clock::now();
  ExportResult r;
  r.path = path;
  r.code_bytes = code_bytes();
  log.progress("pruning and quantising...");
  const FitOptions budget = fit_options(cfg.export_, r.code_bytes);
  const QuantOptions quant = quant_options(cfg.export_, cfg.qat);
  const Codec codec = cfg.export_.artifact_codec;
  for (const auto& p : model.parameters())
    if (!at::isfinite(p.tensor).all().item<bool>())
      throw std::runtime_error("cannot export: weight '" + p.name + "' holds non-finite values (NaN or infinity); nothing is written");
  const std::string record = pack_record(format_record(model_record(cfg)), codec);
  const FitResult fit = fit_export(model.parameters(), gptq_hessians(model, cfg.run.data_path, cfg.train.train_seq_len, quant, log),
                                   {quant, cfg.export_.prune_frac}, budget, codec, kArtifactHeaderBytes + record.size(), log);
  // What the artifact will decode to must be finite too: fp16 overflows past
  // 65,504 (a passthrough value, or a row scale) to infinity.
  for (const QuantTensor& t : fit.tensors)
    if (!at::isfinite(dequantize(t)).all().item<bool>())
      throw std::runtime_error("cannot export: '" + t.name + "' stored " + format_tensor_plan(t.plan) +
                               " decodes to non-finite values (its magnitudes overflow fp16, whose largest value is 65504); "
                               "nothing is written");
  r.artifact_bytes = write_artifact_packed(path, fit.payload.size(), record, fit.packed, codec);
  r.code_path = (std::filesystem::path(path).parent_path() / code().file_name).string();
  write_file_atomic(r.code_path, code().bytes);
  r.export_ms = ms_since(t0);
  r.fitted = fit.changed;
  if (fit.changed)
    log.line("fit: chosen " + describe_choice(fit.choice));
  log.line("Serialized model int6+zstd: " + std::to_string(r.artifact_bytes) + " bytes (" + path + ")");
  log.line("Code size: " + std::to_string(r.code_bytes) + " bytes (" + r.code_path + ": " + codec_name(kCodeCodec) +
           " tar of " + std::to_string(code().raw_bytes) + " source bytes)");
  log.line("Total submission size int6+zstd: " + std::to_string(r.total()) + " bytes");
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
  const ValidationSplit split = load_validation(cfg.run.data_path, cfg.train.train_seq_len, cfg.model.vocab_size);
  const TargetBytes bytes = target_bytes(split, cfg.run.tokenizer_path, cfg.model.vocab_size);
  return {to_tensor(split.tokens).to(device), to_tensor(bytes.bytes).to(device), bytes.source};
}

namespace {

// "<label> val_loss:X val_bpb:Y eval_time:Mms" (and with `exact_line`
// "<label>_exact ..." at full precision), plus the metric.
void log_score(RunLog& log, const std::string& label, const EvalSums& e, double ms, bool exact_line) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s val_loss:%.4f val_bpb:%.4f eval_time:%.0fms", label.c_str(), e.val_loss(),
                e.val_bpb(), ms);
  log.line(buf);
  if (exact_line) {
    std::snprintf(buf, sizeof buf, "%s_exact val_loss:%.8f val_bpb:%.8f", label.c_str(), e.val_loss(), e.val_bpb());
    log.line(buf);
  }
  log.metric(label, {{"val_loss", e.val_loss()}, {"val_bpb", e.val_bpb()}, {"eval_ms", ms}, {"tokens", e.tokens}});
}

}  // namespace

EvalSums score_sliding(GPT& model, const EvalConfig& cfg, const ScoringData& data, RunLog& log, const std::string& label,
                       bool exact_line, Dist& dist) {
  if (cfg.eval_seq_len <= 0) throw std::logic_error("score_sliding: EVAL_SEQ_LEN is 0; fill_derived() resolves it");
  const auto t0 = std::chrono::steady_clock::now();
  auto progress = [&](std::int64_t done, std::int64_t total) {
    log.progress(label + ": batch " + std::to_string(done) + "/" + std::to_string(total));
  };
  EvalSums e = all_reduce(evaluate_sliding(model, data.val, data.bytes, cfg.eval_seq_len, cfg.eval_stride,
                                           cfg.eval_batch_seqs, dist.rank(), dist.world_size(), progress),
                          dist, model.options().device, label);
  log_score(log, label, e, ms_since(t0), exact_line);
  return e;
}

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
  const TttScores s = evaluate_ttt(model, data.val, data.bytes, opts, dist, progress);
  const EvalSums e = all_reduce(s.sums, dist, model.options().device, label);
  log.line(label + ":docs adapted:" + std::to_string(s.adapted_docs) + " unadapted:" + std::to_string(s.unadapted_docs) +
           " (rank 0) global_phases:" + std::to_string(s.global_phases));
  log_score(log, label, e, ms_since(t0), true);
  return e;
}

void load_model_file(GPT& model, const std::string& path) {
  if (ends_with(path, ".safetensors"))
    load_weights(model, path);
  else
    load_artifact_into(model, read_artifact(path).tensors, path);
}

std::optional<ModelRecord> read_model_record(const std::string& path) {
  ModelRecord r;
  if (ends_with(path, ".safetensors")) {
    std::map<std::string, std::string> metadata;
    load_safetensors(path, &metadata);
    r = record_from_metadata(metadata, path);
  } else {
    r = parse_record(read_artifact(path).record_text, path);
  }
  if (r.values.empty()) return std::nullopt;
  return r;
}

}  // namespace pgolf
