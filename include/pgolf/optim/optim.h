// Optimisers of docs/MODEL.md ("The optimiser"): Muon (written out here), AdamW (ATen's fused kernel)
// and global-norm gradient clipping, plus the grouping that wires them to a GPT.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/model/model.h"

namespace pgolf {

// The classic quintic tuple (3.4445, -4.7750, 2.0315), the same `steps` times.
std::vector<NsCoefficients> classic_ns(std::int64_t steps);
// Polar Express: five iterations, each with its own tuple (the record's run);
// the early ones lift small singular values fast, the last ones settle them.
std::vector<NsCoefficients> polar_express_ns();
// The iterations MUON_NS_COEFFS names: `backend_steps` (MUON_BACKEND_STEPS)
// classic ones, the five Polar Express ones, or the explicit tuples.
std::vector<NsCoefficients> ns_coefficients(const NsSchedule& schedule, std::int64_t backend_steps);

// Newton-Schulz orthogonalisation of a matrix G (or of each matrix of a batch
// [n, rows, cols], independently), in `dtype`:
//   X = G / (||G||_F + 1e-7), transposed if rows > cols; then each iteration
//   of `coefficients` in turn.
// Returns X (transposed back) in `dtype`; its singular values are near 1.
at::Tensor newton_schulz(const at::Tensor& G, const std::vector<NsCoefficients>& coefficients, at::ScalarType dtype);
// `steps` classic quintic iterations.
inline at::Tensor newton_schulz5(const at::Tensor& G, std::int64_t steps, at::ScalarType dtype) {
  return newton_schulz(G, classic_ns(steps), dtype);
}

// MuonEq-R: each row of a matrix (or of each matrix of a batch) divided by
// its L2 norm, floored at 1e-7.
at::Tensor row_normalize(const at::Tensor& G);

// A 0-d float32 tensor holding `v` on `device`: how the optimisers take
// values that change from step to step (learning rate, momentum), so that a
// step captured into a CUDA graph reads each step's values (step.h).
at::Tensor step_scalar(double v, const at::Device& device);

// Muon with Nesterov momentum and decoupled weight decay. For each matrix p
// with gradient g and momentum buffer buf:
//   buf = m*buf + g;  g' = g + m*buf;  g' = row_normalize(g') (MuonEq-R, if on)
//   u = NS(g') * sqrt(max(1, rows/cols));  p *= 1 - lr*wd;  p -= lr*u
// Work is split round-robin over ranks: rank r orthogonalises matrices
// i % world == r into a flat buffer, its matrices of one shape together in one
// batched Newton-Schulz (a handful of large products instead of one small
// product per matrix); `all_reduce_sum` (none for one process) sums that
// buffer so every rank applies every update.
// Newton-Schulz precision: bf16 on CUDA (docs/MODEL.md ("The optimiser")); fp32 on CPU, where bf16
// matrix products are slow.
inline at::ScalarType ns_dtype_for(const at::Device& device) { return device.is_cuda() ? at::kBFloat16 : at::kFloat; }

// How Muon's Newton-Schulz work is split over ranks (one rank: not at all).
struct MuonSharding {
  int rank = 0, world_size = 1;
  std::function<void(at::Tensor&)> all_reduce_sum;
};

class Muon {
 public:
  struct Options {
    std::int64_t backend_steps = 5;
    double weight_decay = 0.0;
    at::ScalarType ns_dtype = at::kBFloat16;
    MuonSharding sharding;
    std::vector<NsCoefficients> coefficients = {};  // empty: classic_ns(backend_steps)
    bool row_normalize = false;                // MuonEq-R
  };
  Muon(std::vector<at::Tensor> params, Options opts);
  // lr and momentum: 0-d float32 tensors on the parameters' device (step_scalar).
  void step(const at::Tensor& lr, const at::Tensor& momentum);
  void step(double lr, double momentum);
  // Momentum buffers, one per parameter (state to save and restore).
  std::vector<at::Tensor>& state() { return buffers_; }
  const std::vector<at::Tensor>& state() const { return buffers_; }
  // The rank that orthogonalises matrix i and keeps its momentum buffer up
  // to date; the other ranks never touch or read their copy.
  int owner(std::size_t i) const { return static_cast<int>(i % opts_.sharding.world_size); }

 private:
  std::vector<at::Tensor> params_, buffers_;
  Options opts_;
  std::vector<std::int64_t> offsets_;                // of each matrix in the flat update buffer
  std::vector<std::vector<std::size_t>> shape_groups_;  // matrix indices by shape, in order of appearance
  std::int64_t total_numel_ = 0;
};

// AdamW through ATen's fused kernel:
//   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
class AdamW {
 public:
  struct Options {
    double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
  };
  AdamW(std::vector<at::Tensor> params, Options opts);
  void step(const at::Tensor& lr);  // a 0-d float32 tensor on the parameters' device
  void step(double lr);
  // exp_avg, exp_avg_sq and step counters (state to save and restore).
  std::vector<at::Tensor> state() const;

 private:
  std::vector<at::Tensor> params_, exp_avg_, exp_avg_sq_, steps_;
  Options opts_;
};

// If the global gradient norm exceeds max_norm, scales every gradient by
// max_norm / (norm + 1e-6). Returns the norm before clipping (a 0-d tensor;
// no host synchronisation).
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

// The AdamW settings of a group (Embedding or Scalar): BETA1/BETA2, ADAM_EPS,
// unless the group's own TIED_EMBED_* / SCALAR_* betas and weight decay are set.
AdamW::Options adam_options(const OptimConfig& cfg, ParamGroup group);

// The three optimisers of docs/MODEL.md ("The optimiser") over one model, with the LR schedule applied
// as a multiplier of each group's base rate.
class Optimizers {
 public:
  Optimizers(const GPT& model, const OptimConfig& cfg, at::ScalarType ns_dtype, MuonSharding sharding = {});
  // Muon momentum warmed up linearly from MUON_MOMENTUM_WARMUP_START to
  // MUON_MOMENTUM over MUON_MOMENTUM_WARMUP_STEPS steps.
  double muon_momentum(std::int64_t step) const;
  // The schedule's values for `step` (each group's lr = base * lr_mult, and
  // the Muon momentum) written into device tensors: queued on the current
  // stream, the host does not wait.
  void set_schedule(std::int64_t step, double lr_mult);
  // Clips (GRAD_CLIP_NORM), then steps every optimiser at the values last
  // set. No host value enters: a CUDA graph can capture it (step.h).
  void apply();
  // set_schedule, then apply.
  void step(std::int64_t step, double lr_mult);
  void zero_grad();
  // Every state tensor of every optimiser, in a fixed order.
  std::vector<at::Tensor> state() const;
  // For each tensor of state(), the rank whose copy is current: a Muon
  // buffer's owner; 0 for AdamW's state, the same on every rank.
  std::vector<int> state_owners() const;

 private:
  OptimConfig cfg_;
  std::vector<at::Tensor> all_params_;
  Muon muon_;
  AdamW embed_, scalar_;
  at::Tensor muon_lr_, muon_momentum_, embed_lr_, scalar_lr_;  // set_schedule's values
};

}  // namespace pgolf
