// Score-first test-time training (TTT): the evaluation of the 1.0611 record.
// The model adapts to each validation document, but only on text it has
// already scored, so every target is scored by weights that never saw it.
//
// Documents: the validation stream cut at every BOS; a document runs from its
// BOS to the next BOS inclusive (its targets are the tokens after its BOS up
// to that next BOS), so each target belongs to exactly one document.
// Documents are sorted longest first (ties: stream order) and cut into
// batches of TTT_BATCH_DOCS; batch j runs on rank j % world, and batches
// j*world .. j*world + world-1 form round j.
//
// A batch: fresh adapters (lora.h) for each of its documents, then for chunk
// k = 0, 1, ...: every document with targets left takes its targets
// [k*C, min((k+1)*C, n)) (C = TTT_CHUNK) with a window of up to TTT_CONTEXT
// inputs of its own past ending at the chunk's end; one forward pass over the
// batch scores them (their NLL and bytes enter the sums); then, for the
// documents that have targets after this chunk, one AdamW step on
//   sum over those documents of (mean NLL of the document's chunk),
// each document's adapters moved by its own term only. A document's last
// chunk is never trained on.
//
// Global phases (TTT_GLOBAL_AFTER): after the round in which the number of
// scored documents reaches an entry, one epoch of SGD with momentum on the
// whole model over every document scored so far (concatenated in schedule
// order, cut into EVAL_SEQ_LEN sequences, TTT_GLOBAL_BATCH_SEQS per rank and
// step, gradients averaged over ranks, clipped at TTT_GLOBAL_CLIP,
// lr = TTT_GLOBAL_LR * (1 + cos(pi * step / steps)) / 2).
//
// Budget (EVAL_BUDGET_SECONDS): once a rank has spent it, every rank scores
// the remaining batches with adapters that take no steps (the base model on
// the same windows), so the score stays complete.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/dist/dist.h"
#include "pgolf/eval/eval.h"
#include "pgolf/model/model.h"

namespace pgolf {

// What TTT reads: its section, and from the evaluation's and the run's the
// sequence length of the global phases (EVAL_SEQ_LEN), the time budget
// (EVAL_BUDGET_SECONDS; 0: none) and the seed of the adapters' A factors (SEED).
struct TttOptions {
  TttConfig ttt;
  std::int64_t global_seq_len = 2048;
  double budget_seconds = 0;
  std::uint64_t seed = 1337;
};
inline TttOptions ttt_options(const Config& cfg) {
  return {cfg.ttt, cfg.eval.eval_seq_len, cfg.eval.eval_budget_seconds, static_cast<std::uint64_t>(cfg.run.seed)};
}

// Inputs val[start .. start+targets-1], targets val[start+1 .. start+targets].
struct Document {
  std::int64_t start = 0, targets = 0;
};
// The documents of `val` (CPU int64): cut before every BOS after position 0,
// each running to the next BOS inclusive; together their targets are 1..N-1.
std::vector<Document> split_documents(const at::Tensor& val, std::int64_t bos);
// Document indices, longest first, in batches of `batch_docs`.
std::vector<std::vector<std::size_t>> ttt_batches(const std::vector<Document>& docs, std::int64_t batch_docs);

struct TttProgress {
  std::int64_t docs_done = 0, docs_total = 0;  // this rank's
  double seconds = 0, eta_seconds = 0;         // spent, and estimated left (by tokens processed)
};

struct TttScores {
  EvalSums sums;            // this rank's
  at::Tensor target_nll;    // [N] float64 on the device: NLL of each target this rank scored, 0 elsewhere
  at::Tensor times_scored;  // [N] int32: how often this rank scored each target
  std::int64_t adapted_docs = 0, unadapted_docs = 0;  // this rank's, before / after the budget ran out
  std::int64_t global_phases = 0;
};

// Scores `val` (int64) with target bytes `val_bytes` (int32, eval.h) on the
// model's device. The model's weights change in global phases; its adapter
// is cleared on return. Every rank must call it (collectives per round).
TttScores evaluate_ttt(GPT& model, const at::Tensor& val, const at::Tensor& val_bytes, const TttOptions& opts, Dist& dist,
                       const std::function<void(const TttProgress&)>& progress = {});

}  // namespace pgolf
