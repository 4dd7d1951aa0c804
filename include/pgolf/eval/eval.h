// Evaluation: val_loss (mean NLL per token, nats) and val_bpb (bits per
// UTF-8 byte of the text, counted by byte sidecars or the tokenizer's tables).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "pgolf/data/data.h"
#include "pgolf/dist/dist.h"
#include "pgolf/model/model.h"
#include "pgolf/data/tokenizer.h"

namespace pgolf {

// Float64 sums that ranks add together before the ratios are taken.
struct EvalSums {
  double nll = 0, tokens = 0, bytes = 0;
  double val_loss() const { return nll / tokens; }
  // (nll / ln 2) / bytes
  double val_bpb() const;
};

// The sums of every rank, added in float64 (identity for one process). This is
// where scores reach the host, so they are checked here, on every rank alike:
// a non-finite val_loss or val_bpb (diverged training, NaN/Inf weights) throws
// std::runtime_error naming `what` (the validation, or the score's label).
EvalSums all_reduce(const EvalSums& local, Dist& dist, const at::Device& device, const std::string& what = "validation");

// The val_bpb denominator, per position of the validation tokens: bytes[i]
// is what target val[i] adds; bytes[0] = 0 (never a target).
struct TargetBytes {
  std::vector<std::int32_t> bytes;
  std::string source;  // "sidecars" or "tokenizer" (its tables)
};
// By the tokenizer's tables:
// bytes[i] = base_bytes[val[i]] + (has_leading_space[val[i]] && !is_boundary[val[i-1]]).
std::vector<std::int32_t> lut_target_bytes(const std::vector<std::uint16_t>& val, const ByteLuts& luts);
// The split's sidecar counts when it has them (the tokenizer is not read),
// else the tables of the tokenizer at `tokenizer_path`.
TargetBytes target_bytes(const ValidationSplit& split, const std::string& tokenizer_path, std::int64_t vocab_size);

// Validation tokens as an int64 CPU tensor; target bytes as an int32 one.
at::Tensor to_tensor(const std::vector<std::uint16_t>& tokens);
at::Tensor to_tensor(const std::vector<std::int32_t>& val_bytes);

// Standard evaluation: the N-1 targets of `val` (length k*seq_len + 1) in
// non-overlapping windows of seq_len, `batch_seqs` windows at a time; this
// rank takes windows [total*rank/world, total*(rank+1)/world). `val_bytes`
// is target_bytes() as a tensor, on the model's device like `val`.
EvalSums evaluate_standard(GPT& model, const at::Tensor& val, const at::Tensor& val_bytes, std::int64_t seq_len,
                           std::int64_t batch_seqs, int rank = 0, int world_size = 1);

// Sliding-window evaluation, the reported score. With T = N-1 targets,
// windows of seq_len start at 0, stride, 2*stride, ... while targets remain;
// window 0 scores all its targets, a window at ws > 0 scores the targets at
// offsets [seq_len - stride, seq_len) of the window, clipped to the data, so
// every target is scored exactly once with at least seq_len - stride tokens
// of context (or all there are). Windows are split contiguously over ranks
// and run batch_seqs at a time; `progress(done, total)` follows the batches.
std::int64_t sliding_window_count(std::int64_t targets, std::int64_t seq_len, std::int64_t stride);
EvalSums evaluate_sliding(GPT& model, const at::Tensor& val, const at::Tensor& val_bytes, std::int64_t seq_len,
                          std::int64_t stride, std::int64_t batch_seqs, int rank = 0, int world_size = 1,
                          const std::function<void(std::int64_t, std::int64_t)>& progress = {});

// The baseline a model must beat: bits per byte of a unigram model with
// add-one smoothing, p(t) = (count[t] + 1) / (N + V), fitted on `train_counts`
// and scored on the N-1 targets of `val` with their target bytes.
double unigram_bpb(const std::vector<std::int64_t>& train_counts, const std::vector<std::uint16_t>& val,
                   const std::vector<std::int32_t>& val_bytes);

}  // namespace pgolf
