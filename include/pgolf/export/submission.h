// The scored submission (docs/MODEL.md ("The export")): prune, quantise and pack the trained model
// into the artifact, account for its size against the 16,000,000-byte budget,
// read it back and score it with the sliding-window evaluation.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pgolf/config/record.h"
#include "pgolf/eval/eval.h"
#include "pgolf/eval/score_lines.h"
#include "pgolf/eval/ttt.h"
#include "pgolf/export/quant.h"
#include "pgolf/model/model.h"
#include "pgolf/core/run.h"

namespace pgolf {

constexpr std::uint64_t kSubmissionBudget = 16000000;

struct ExportResult {
  std::string path;
  std::string code_path;  // train_gpt.py (export/script.h), written next to the artifact: the counted code
  std::uint64_t artifact_bytes = 0, code_bytes = 0;
  bool fitted = false;  // the export changed the configured choices to fit the budget
  double export_ms = 0;
  double calibration_ms = 0;  // of export_ms: GPTQ's pass over training data (0 without GPTQ plans)
  std::uint64_t total() const { return artifact_bytes + code_bytes; }
};

// Prunes (PRUNE_FRAC) and quantises copies of the model's weights, fitted to
// BUDGET_BYTES (fit.h) less the counted code, and writes the artifact to
// `path` and the code (train_gpt.py) next to it; logs the size lines
// (Serialized model ..., Code size ..., Total submission size ...).
ExportResult export_submission(GPT& model, const Config& cfg, const std::string& path, RunLog& log);

// The input Hessians GPTQ plans need (calibrate.h, GPTQ_TOKENS of the
// training shards under DATA_PATH); empty when no tensor's plan uses GPTQ.
std::map<std::string, at::Tensor> gptq_hessians(GPT& model, const std::string& data_path, std::int64_t seq_len,
                                                const QuantOptions& quant, RunLog& log);

// Validation tokens and their target bytes for scoring (eval.h).
struct ScoringData {
  at::Tensor val;    // int64, on the compute device: copied there once per run
  at::Tensor bytes;  // int32, aligned with val, on the same device
  std::string byte_source;
  // EVAL_TOKENS_LIMIT: the targets kept when the split was cut short for a
  // quick experiment (every score line then says so); 0 = the whole split.
  std::int64_t subset_tokens = 0;
};
ScoringData load_scoring_data(const Config& cfg, at::Device device);

// Sliding-window evaluation (EVAL_SEQ_LEN, EVAL_STRIDE, EVAL_BATCH_SEQS) with a
// progress line naming `what`. Each rank scores its share of the windows;
// the sums are all-reduced.
TimedScore sliding_score(GPT& model, const EvalConfig& cfg, const ScoringData& data, RunLog& log, const std::string& what,
                         Dist& dist);

// Logs `lines` (ScoreLines) and the metric `label` {val_loss, val_bpb, eval_ms, tokens}.
void log_score(RunLog& log, const std::vector<std::string>& lines, const std::string& label, const TimedScore& s);

// The final scores of a model read back from its artifact, under the lines
// of ScoreLines(LOG_COMPAT): the round trip on non-overlapping windows of
// EVAL_SEQ_LEN, then the sliding-window score, which is returned with its time.
TimedScore score_artifact(GPT& restored, const EvalConfig& cfg, const ScoringData& data, RunLog& log, Dist& dist);

// Unquantised weights (before export, or a weights file) with sliding
// windows: final_prequant_sliding[_exact].
EvalSums score_prequant(GPT& model, const EvalConfig& cfg, const ScoringData& data, RunLog& log, Dist& dist);

// Score-first test-time training (ttt.h, the TTT_* keys) with a progress
// line, an estimate of the total time after the first batch (warning when it
// exceeds EVAL_BUDGET_SECONDS), the documents adapted and the score lines
// `label` and `label`_exact. The model's weights change when
// TTT_GLOBAL_AFTER is set.
EvalSums score_ttt(GPT& model, const TttOptions& opts, const ScoringData& data, RunLog& log, const std::string& label,
                   Dist& dist);

// A model file read once: an artifact (its quantised tensors) or a
// .safetensors weights file (its tensors), with what it records of the
// configuration that made it; no record for files written before pgolf
// recorded it (artifact version 2, weights without config.* metadata).
struct ModelFile {
  std::string path;
  std::optional<ModelRecord> record;
  std::vector<QuantTensor> quantized;  // an artifact's
  std::vector<NamedTensor> weights;    // a weights file's
  bool is_artifact() const { return !quantized.empty(); }
};
ModelFile read_model_file(const std::string& path);
// Loads it into the model (dequantised for an artifact).
void load_model_file(GPT& model, const ModelFile& file);
void load_model_file(GPT& model, const std::string& path);
std::optional<ModelRecord> read_model_record(const std::string& path);

}  // namespace pgolf
