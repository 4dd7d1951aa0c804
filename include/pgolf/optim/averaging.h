// Weight averaging of docs/MODEL.md ("The optimiser"): SWA (arithmetic mean of snapshots taken during
// the warm-down) and EMA (exponential moving average after every step).
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "pgolf/config/values.h"

namespace pgolf {

// When SWA snapshots (SWA_STEP_INDEX): whether to snapshot after the step that
// brought the count of steps done to `steps_done`, every `every` steps.
//   done  (#219, #286, the 10L record): steps_done % every == 0, after steps 50, 100, ...
//   taken (#76, which tests the 0-based index of the step just taken):
//           (steps_done - 1) % every == 0, after steps 51, 101, ...
using SwaTiming = bool (*)(std::int64_t steps_done, std::int64_t every);
SwaTiming swa_timing(SwaStepIndex step_index);

// Running sum of snapshots; apply() loads sum / count into the parameters.
class Swa {
 public:
  Swa() = default;
  // Continues from the sum of `count` snapshots (a checkpoint's).
  Swa(std::vector<at::Tensor> sum, std::int64_t count) : sum_(std::move(sum)), count_(count) {}
  void add(const std::vector<at::Tensor>& params);
  void apply(const std::vector<at::Tensor>& params) const;
  // The end of the run, as every seed: with `add_final` the final weights
  // join a sum already started (#76); then the average is loaded only if the
  // sum holds more than one snapshot (returns whether it was). With one or
  // none the parameters keep the final weights.
  bool finish(const std::vector<at::Tensor>& params, bool add_final);
  std::int64_t count() const { return count_; }
  const std::vector<at::Tensor>& sum() const { return sum_; }

 private:
  std::vector<at::Tensor> sum_;
  std::int64_t count_ = 0;
};

// ema = d * ema + (1 - d) * w, starting from the weights at construction.
class Ema {
 public:
  Ema(const std::vector<at::Tensor>& params, double decay);
  void update(const std::vector<at::Tensor>& params);
  void apply(const std::vector<at::Tensor>& params) const;
  const std::vector<at::Tensor>& state() const { return ema_; }

 private:
  std::vector<at::Tensor> ema_;
  double decay_;
};

}  // namespace pgolf
