// `pgolf bench`: speed of the configured model's training step on random
// tokens (forward + backward + optimiser), as one rank of a run of
// `world_size` ranks does it: TRAIN_BATCH_TOKENS / world_size tokens per step
// in 8 / world_size micro-steps, and 1 / world_size of the Newton-Schulz work
// (without the communication). world_size 8 on one GPU is each GPU's share of
// an 8-GPU step.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/model/model.h"

namespace pgolf {

struct BenchOptions {
  int steps = 5, warmup = 1, world_size = 1;
  double peak_tflops = 0;  // 0: the device's known bf16 peak (none on CPU)
  std::vector<std::string> against;  // KEY=VALUE: a second run with these set, compared with the first
  int repeats = 1;                    // runs (of the pair, alternately, with `against`)
};

struct BenchResult {
  std::string device, device_name;
  std::int64_t params = 0, tokens_per_step = 0, micro_steps = 0, steps = 0, world_size = 1;
  double flops_per_token = 0, peak_tflops = 0;
  double forward_ms = 0, backward_ms = 0, optimizer_ms = 0;  // per step, each phase synchronised on its own
  double step_ms = 0;                                         // per step, steps back to back (no syncs inside)
  bool captured = false;                                      // those steps replayed a CUDA graph (CUDA_GRAPHS)
  double build_ms = 0, first_step_ms = 0, launch_to_first_step_ms = 0;
  std::string memory;
  std::vector<std::string> notes;  // what the step reported (captures, a failed capture)
  double tokens_per_second() const { return tokens_per_step / (step_ms / 1000.0); }
  // Model FLOP utilisation: flops_per_token * tokens/s over the peak (0 when unknown).
  double mfu() const { return peak_tflops > 0 ? flops_per_token * tokens_per_second() / (peak_tflops * 1e12) : 0; }
};

// Training FLOPs per token, the count MFU uses:
//   6 * N_matmul + 6 * L * T * d
// N_matmul: weights of every matrix product (the blocks' projections, the
// BigramHash projection, and the tied embedding as output head), times 6 for
// forward (2) and backward (4); the second term is causal attention's
// scores and weighted sums (2 * 2 * T * d per layer forward, halved by the
// causal mask, times 3 for training) at sequence length T and width d.
// Embedding lookups, norms and elementwise work are not counted.
double training_flops_per_token(const GPT& model, std::int64_t seq_len);

// Dense bf16 peak of a GPU, from its name (H100/H200 SXM 989.4, H100 PCIe
// 756, A100 312 TFLOP/s); 0 when unknown.
double known_peak_tflops(const std::string& device_name);

// Runs `warmup` untimed steps, `steps` steps timed phase by phase (eagerly),
// then `steps` steps back to back for the step time, through TrainStep (with
// CUDA_GRAPHS on CUDA: captured first, untimed, then replayed).
BenchResult run_bench(const Config& cfg, const BenchOptions& opts);
std::string format_bench(const BenchResult& r);
// "ratio (B / A): tokens_per_s:x step_ms:x mfu:x" of run b against run a.
std::string format_bench_ratio(const BenchResult& a, const BenchResult& b);
// Over repeated runs: "step_ms over N runs: mean:M min:A max:B" of `runs`;
// with a second run each (`pairs`), the same of the step-time and
// tokens-per-second ratios (second / first), pair by pair.
std::string format_bench_repeats(const std::vector<BenchResult>& runs);
std::string format_bench_repeats(const std::vector<std::pair<BenchResult, BenchResult>>& pairs);

}  // namespace pgolf
