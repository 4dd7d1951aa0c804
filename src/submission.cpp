#include "pgolf/submission.h"

#include <pgolf_code_bytes.h>

#include <chrono>
#include <cstdio>

#include "pgolf/artifact.h"
#include "pgolf/data.h"
#include "pgolf/io.h"
#include "pgolf/runtime.h"
#include "pgolf/tokenizer.h"
#include "pgolf/weights.h"

namespace pgolf {
std::uint64_t code_bytes() { return PGOLF_CODE_BYTES; }

ExportResult export_submission(GPT& model, const Config& cfg, const std::string& path, RunLog& log) {
  const auto t0 = std::chrono::steady_clock::now();
  ExportResult r;
  r.path = path;
  r.pruned = prune_small_weights(model.parameters(), cfg.prune_frac);
  const double prune_ms = ms_since(t0);
  log.progress("quantising...");
  const auto tensors = quantize_tensors(model.parameters(), quant_options(cfg));
  const double quant_ms = ms_since(t0) - prune_ms;
  log.progress("compressing (zstd -22)...");
  r.artifact_bytes = write_artifact(path, tensors);
  r.code_bytes = code_bytes();
  r.export_ms = ms_since(t0);
  log.line("pruned " + std::to_string(r.pruned) + " weights (PRUNE_FRAC=" + get_config_value(cfg, *find_config_key("PRUNE_FRAC")) + ")");
  log.line("Serialized model int6+zstd: " + std::to_string(r.artifact_bytes) + " bytes (" + path + ")");
  log.line("Code size: " + std::to_string(r.code_bytes) + " bytes");
  log.line("Total submission size int6+zstd: " + std::to_string(r.total()) + " bytes");
  char buf[128];
  std::snprintf(buf, sizeof buf, "export_time:%.0fms (prune %.0f, quantise %.0f, pack+zstd %.0f) budget_left:%lld bytes",
                r.export_ms, prune_ms, quant_ms, r.export_ms - prune_ms - quant_ms,
                static_cast<long long>(kSubmissionBudget) - static_cast<long long>(r.total()));
  log.line(buf);
  if (r.total() > kSubmissionBudget)
    log.line("WARNING: total submission size " + std::to_string(r.total()) + " bytes is OVER the " +
             std::to_string(kSubmissionBudget) + "-byte budget by " + std::to_string(r.total() - kSubmissionBudget) +
             " bytes: this artifact cannot be submitted");
  log.metric("export", {{"artifact_bytes", double(r.artifact_bytes)}, {"code_bytes", double(r.code_bytes)},
                        {"total_bytes", double(r.total())}, {"export_ms", r.export_ms}});
  return r;
}

ScoringData load_scoring_data(const Config& cfg, at::Device device) {
  Tokenizer tok(cfg.tokenizer_path);
  return {to_tensor(load_validation_tokens(val_pattern(cfg.data_path), cfg.train_seq_len)),
          DeviceLuts(build_byte_luts(tok, static_cast<int>(cfg.vocab_size)), device)};
}

EvalSums score_sliding(GPT& model, const Config& cfg, const ScoringData& data, RunLog& log, const std::string& label,
                       bool exact_line, Dist& dist) {
  const auto t0 = std::chrono::steady_clock::now();
  auto progress = [&](std::int64_t done, std::int64_t total) {
    log.progress(label + ": batch " + std::to_string(done) + "/" + std::to_string(total));
  };
  EvalSums e = all_reduce(evaluate_sliding(model, data.val, data.luts, eval_seq_len(cfg), cfg.eval_stride,
                                           cfg.eval_batch_seqs, dist.rank(), dist.world_size(), progress),
                          dist, model.options().device);
  const double ms = ms_since(t0);
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s val_loss:%.4f val_bpb:%.4f eval_time:%.0fms", label.c_str(), e.val_loss(),
                e.val_bpb(), ms);
  log.line(buf);
  if (exact_line) {
    std::snprintf(buf, sizeof buf, "%s_exact val_loss:%.8f val_bpb:%.8f", label.c_str(), e.val_loss(), e.val_bpb());
    log.line(buf);
  }
  log.metric(label, {{"val_loss", e.val_loss()}, {"val_bpb", e.val_bpb()}, {"eval_ms", ms}, {"tokens", e.tokens}});
  return e;
}

void load_model_file(GPT& model, const std::string& path) {
  if (ends_with(path, ".safetensors"))
    load_weights(model, path);
  else
    load_artifact_into(model, read_artifact(path), path);
}

}  // namespace pgolf
