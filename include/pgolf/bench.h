// `pgolf bench`: speed of one training step of the configured model on random
// tokens (forward + backward + optimiser at TRAIN_BATCH_TOKENS per step).
#pragma once
#include <string>

#include "pgolf/config.h"

namespace pgolf {

struct BenchResult {
  std::string device;
  std::int64_t params = 0, tokens_per_step = 0, steps = 0;
  double forward_ms = 0, backward_ms = 0, optimizer_ms = 0;  // per step, averaged
  double build_ms = 0, first_step_ms = 0;                     // model construction, first (warm-up) step
  std::string memory;
  double step_ms() const { return forward_ms + backward_ms + optimizer_ms; }
  double tokens_per_second() const { return tokens_per_step / (step_ms() / 1000.0); }
};

// Runs `warmup` untimed steps, then `steps` timed ones, with a device
// synchronisation around each phase.
BenchResult run_bench(const Config& cfg, int steps, int warmup);
std::string format_bench(const BenchResult& r);

}  // namespace pgolf
