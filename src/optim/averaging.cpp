#include "pgolf/optim/averaging.h"

#include <ATen/core/grad_mode.h>

#include <stdexcept>

namespace pgolf {
namespace {

std::vector<at::Tensor> detached(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach());
  return out;
}

bool after_steps_done(std::int64_t steps_done, std::int64_t every) { return steps_done % every == 0; }
bool after_step_index(std::int64_t steps_done, std::int64_t every) { return (steps_done - 1) % every == 0; }

}  // namespace

SwaTiming swa_timing(SwaStepIndex step_index) {
  return step_index == SwaStepIndex::Done ? after_steps_done : after_step_index;
}

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

bool Swa::finish(const std::vector<at::Tensor>& params, bool add_final) {
  if (add_final && count_ > 0) add(params);
  if (count_ < 2) return false;
  apply(params);
  return true;
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
