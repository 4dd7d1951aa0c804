// The scored submission (docs/MODEL.md ("The export")): prune, quantise and pack the trained model
// into the artifact, account for its size against the 16,000,000-byte budget,
// read it back and score it with the sliding-window evaluation.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "pgolf/config/record.h"
#include "pgolf/export/code_archive.h"
#include "pgolf/eval/eval.h"
#include "pgolf/eval/ttt.h"
#include "pgolf/export/quant.h"
#include "pgolf/model/model.h"
#include "pgolf/core/run.h"

namespace pgolf {

constexpr std::uint64_t kSubmissionBudget = 16000000;

// The code of the submission: the source needed to rebuild pgolf
// (CMakeLists.txt, cmake/, include/, src/) as a reproducible tar compressed
// with kCodeCodec, the smallest of the codecs on pgolf's own tree
// (docs/BENCHMARKS.md). Built once per process.
constexpr Codec kCodeCodec = Codec::Brotli;
const CodeArchive& code();
// The bytes counted against the budget: code().bytes.size().
std::uint64_t code_bytes();

struct ExportResult {
  std::string path;
  std::string code_path;  // the code archive written next to the artifact
  std::uint64_t artifact_bytes = 0, code_bytes = 0;
  bool fitted = false;  // the export changed the configured choices to fit the budget
  double export_ms = 0;
  std::uint64_t total() const { return artifact_bytes + code_bytes; }
};

// Prunes (PRUNE_FRAC) and quantises copies of the model's weights, fitted to
// BUDGET_BYTES (fit.h), and writes the artifact to `path`; logs the size
// lines (Serialized model ..., Total submission size ...).
ExportResult export_submission(GPT& model, const Config& cfg, const std::string& path, RunLog& log);

// The input Hessians GPTQ plans need (calibrate.h, GPTQ_TOKENS of the
// training shards under DATA_PATH); empty when no plan uses GPTQ.
std::map<std::string, at::Tensor> gptq_hessians(GPT& model, const std::string& data_path, std::int64_t seq_len,
                                                const QuantOptions& quant, RunLog& log);

// Validation tokens and their target bytes for scoring (eval.h).
struct ScoringData {
  at::Tensor val;    // int64, on the compute device: copied there once per run
  at::Tensor bytes;  // int32, aligned with val, on the same device
  std::string byte_source;
};
ScoringData load_scoring_data(const Config& cfg, at::Device device);

// Sliding-window evaluation (EVAL_SEQ_LEN, EVAL_STRIDE, EVAL_BATCH_SEQS) with a
// progress line; logs "<label> val_loss:X val_bpb:Y eval_time:Mms" and, when
// `exact_line` is set, "<label>_exact val_loss:X val_bpb:Y" with full precision.
// Each rank scores its share of the windows; the sums are all-reduced.
EvalSums score_sliding(GPT& model, const EvalConfig& cfg, const ScoringData& data, RunLog& log, const std::string& label,
                       bool exact_line, Dist& dist);

// Score-first test-time training (ttt.h, the TTT_* keys) with a progress
// line, an estimate of the total time after the first batch (warning when it
// exceeds EVAL_BUDGET_SECONDS), the documents adapted and the lines of
// score_sliding (always with _exact). The model's weights change when
// TTT_GLOBAL_AFTER is set.
EvalSums score_ttt(GPT& model, const TttOptions& opts, const ScoringData& data, RunLog& log, const std::string& label,
                   Dist& dist);

// Loads `path` into the model: an artifact, or a .safetensors weights file.
void load_model_file(GPT& model, const std::string& path);
// What `path` (an artifact or a weights file) records of the configuration
// that made it; none for files written before pgolf recorded it (artifact
// version 2, weights without config.* metadata).
std::optional<ModelRecord> read_model_record(const std::string& path);

}  // namespace pgolf
