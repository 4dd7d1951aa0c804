#include "pgolf/averaging.h"

#include <ATen/core/grad_mode.h>

namespace pgolf {
namespace {

std::vector<at::Tensor> detached(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach());
  return out;
}

}  // namespace

void Swa::add(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  if (sum_.empty()) {
    for (const auto& p : params) sum_.push_back(p.detach().clone());
  } else {
    at::_foreach_add_(sum_, detached(params));
  }
  ++count_;
}

void Swa::apply(const std::vector<at::Tensor>& params) const {
  if (count_ == 0) return;
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(sum_[i] / static_cast<double>(count_));
}

Ema::Ema(const std::vector<at::Tensor>& params, double decay) : decay_(decay) {
  for (const auto& p : params) ema_.push_back(p.detach().clone());
}

void Ema::update(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  // ema + (1-d)(w - ema) = d*ema + (1-d)*w
  at::_foreach_lerp_(ema_, detached(params), 1.0 - decay_);
}

void Ema::apply(const std::vector<at::Tensor>& params) const {
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(ema_[i]);
}

}  // namespace pgolf
