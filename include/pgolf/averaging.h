// Weight averaging of docs/MODEL.md (the optimiser): SWA (arithmetic mean of snapshots taken during
// the warm-down) and EMA (exponential moving average after every step).
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace pgolf {

// Running sum of snapshots; apply() loads sum / count into the parameters.
class Swa {
 public:
  Swa() = default;
  // Continues from the sum of `count` snapshots (a checkpoint's).
  Swa(std::vector<at::Tensor> sum, std::int64_t count) : sum_(std::move(sum)), count_(count) {}
  void add(const std::vector<at::Tensor>& params);
  void apply(const std::vector<at::Tensor>& params) const;
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
