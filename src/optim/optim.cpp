#include "pgolf/optim/optim.h"

#include <algorithm>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <map>
#include <sstream>

namespace pgolf {

std::vector<NsCoefficients> classic_ns(std::int64_t steps) {
  return std::vector<NsCoefficients>(static_cast<std::size_t>(std::max<std::int64_t>(steps, 0)), {3.4445, -4.7750, 2.0315});
}

std::vector<NsCoefficients> polar_express_ns() {
  return {{8.156554524902461, -22.48329292557795, 15.878769915207462},
          {4.042929935166739, -2.808917465908714, 0.5000178451051316},
          {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
          {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
          {2.3465413258596377, -1.7097828382687081, 0.42323551169305323}};
}

std::vector<NsCoefficients> ns_coefficients(const NsSchedule& schedule, std::int64_t backend_steps) {
  switch (schedule.kind) {
    case NsSchedule::Classic: return classic_ns(backend_steps);
    case NsSchedule::PolarExpress: return polar_express_ns();
    case NsSchedule::Tuples: break;
  }
  return schedule.tuples;
}

at::Tensor newton_schulz(const at::Tensor& G, const std::vector<NsCoefficients>& coefficients, at::ScalarType dtype) {
  TORCH_CHECK(G.dim() >= 2, "newton_schulz expects a matrix or a batch of matrices, got ", G.sizes());
  at::Tensor X = G.to(dtype);
  X = X / (at::linalg_vector_norm(X, 2, {-2, -1}, /*keepdim=*/true) + 1e-7);
  const bool tall = G.size(-2) > G.size(-1);
  if (tall) X = X.mT();
  for (const auto& [a, b, c] : coefficients) {
    at::Tensor A = at::matmul(X, X.mT());
    at::Tensor B = b * A + c * at::matmul(A, A);
    X = a * X + at::matmul(B, X);
  }
  return tall ? X.mT() : X;
}

at::Tensor row_normalize(const at::Tensor& G) {
  return G / at::linalg_vector_norm(G, 2, {-1}, /*keepdim=*/true).clamp_min(1e-7);
}

Muon::Muon(std::vector<at::Tensor> params, Options opts) : params_(std::move(params)), opts_(std::move(opts)) {
  if (opts_.coefficients.empty()) opts_.coefficients = classic_ns(opts_.backend_steps);
  std::map<std::vector<std::int64_t>, std::size_t> group_of_shape;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i];
    TORCH_CHECK(p.dim() == 2, "Muon only takes matrices");
    buffers_.push_back(at::zeros_like(p, at::MemoryFormat::Contiguous).detach());
    offsets_.push_back(total_numel_);
    total_numel_ += p.numel();
    auto [it, added] = group_of_shape.emplace(p.sizes().vec(), shape_groups_.size());
    if (added) shape_groups_.emplace_back();
    shape_groups_[it->second].push_back(i);
  }
}

at::Tensor step_scalar(double v, const at::Device& device) {
  return at::full({}, v, at::TensorOptions().dtype(at::kFloat).device(device));
}

void Muon::step(double lr, double momentum) {
  if (params_.empty()) return;
  step(step_scalar(lr, params_[0].device()), step_scalar(momentum, params_[0].device()));
}

void Muon::step(const at::Tensor& lr, const at::Tensor& momentum) {
  if (params_.empty()) return;
  at::NoGradGuard no_grad;
  at::Tensor flat = at::zeros({total_numel_}, params_[0].options().dtype(opts_.ns_dtype));
  for (const auto& group : shape_groups_) {
    // This rank's matrices of one shape, orthogonalised in one batched product.
    std::vector<std::size_t> mine;
    std::vector<at::Tensor> nesterov;
    for (std::size_t i : group) {
      const at::Tensor& p = params_[i];
      if (owner(i) != opts_.sharding.rank || !p.grad().defined()) continue;
      const at::Tensor& g = p.grad();
      buffers_[i].mul_(momentum).add_(g);
      nesterov.push_back(at::addcmul(g, buffers_[i], momentum));
      mine.push_back(i);
    }
    if (mine.empty()) continue;
    const at::Tensor& p0 = params_[mine.front()];
    at::Tensor g = at::stack(nesterov);
    if (opts_.row_normalize) g = row_normalize(g);
    at::Tensor u = newton_schulz(g, opts_.coefficients, opts_.ns_dtype);
    u.mul_(std::sqrt(std::max(1.0, static_cast<double>(p0.size(0)) / static_cast<double>(p0.size(1)))));
    for (std::size_t j = 0; j < mine.size(); ++j)
      flat.narrow(0, offsets_[mine[j]], p0.numel()).copy_(u[static_cast<std::int64_t>(j)].reshape({-1}));
  }
  if (opts_.sharding.world_size > 1) opts_.sharding.all_reduce_sum(flat);
  const at::Tensor keep = opts_.weight_decay > 0 ? 1.0 - lr * opts_.weight_decay : at::Tensor();  // 1 - lr*wd
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i];
    if (keep.defined()) p.mul_(keep);
    p.addcmul_(flat.narrow(0, offsets_[i], p.numel()).view_as(p).to(p.scalar_type()), lr, -1.0);
  }
}

AdamW::AdamW(std::vector<at::Tensor> params, Options opts) : params_(std::move(params)), opts_(opts) {
  for (const auto& p : params_) {
    exp_avg_.push_back(at::zeros_like(p).detach());
    exp_avg_sq_.push_back(at::zeros_like(p).detach());
    steps_.push_back(at::zeros({}, p.options().dtype(at::kFloat)).detach());
  }
}

void AdamW::step(double lr) {
  if (params_.empty()) return;
  step(step_scalar(lr, params_[0].device()));
}

void AdamW::step(const at::Tensor& lr) {
  if (params_.empty()) return;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& p : params_) grads.push_back(p.grad().defined() ? p.grad() : at::zeros_like(p));
  at::_foreach_add_(steps_, 1.0);  // the kernel reads t, it does not advance it
  at::_fused_adamw_(params_, grads, exp_avg_, exp_avg_sq_, {}, steps_, lr, opts_.beta1, opts_.beta2,
                    opts_.weight_decay, opts_.eps, /*amsgrad=*/false, /*maximize=*/false);
}

std::vector<at::Tensor> AdamW::state() const {
  std::vector<at::Tensor> s = exp_avg_;
  s.insert(s.end(), exp_avg_sq_.begin(), exp_avg_sq_.end());
  s.insert(s.end(), steps_.begin(), steps_.end());
  return s;
}

at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return at::zeros({});
  at::Tensor norm = at::linalg_vector_norm(at::stack(at::_foreach_norm(grads)).to(at::kFloat));
  if (max_norm > 0) {
    at::Tensor coef = (max_norm / (norm + 1e-6)).clamp_max(1.0);
    at::_foreach_mul_(grads, coef);
  }
  return norm;
}

namespace {

std::vector<at::Tensor> group(const GPT& model, ParamGroup g) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.parameters())
    if (param_group(p.name, p.tensor) == g) out.push_back(p.tensor);
  return out;
}

}  // namespace

AdamW::Options adam_options(const OptimConfig& cfg, ParamGroup group) {
  auto own = [](double v, double shared) { return v >= 0 ? v : shared; };
  if (group == ParamGroup::Embedding)
    return {own(cfg.tied_embed_beta1, cfg.beta1), own(cfg.tied_embed_beta2, cfg.beta2), cfg.adam_eps, tied_embed_wd(cfg)};
  return {own(cfg.scalar_beta1, cfg.beta1), own(cfg.scalar_beta2, cfg.beta2), cfg.adam_eps, scalar_wd(cfg)};
}

Optimizers::Optimizers(const GPT& model, const OptimConfig& cfg, at::ScalarType ns_dtype, MuonSharding sharding)
    : cfg_(cfg),
      muon_(group(model, ParamGroup::Muon), {cfg.muon_backend_steps, cfg.muon_wd, ns_dtype, std::move(sharding),
                                             ns_coefficients(cfg.muon_ns_coeffs, cfg.muon_backend_steps),
                                             cfg.muon_row_norm}),
      embed_(group(model, ParamGroup::Embedding), adam_options(cfg, ParamGroup::Embedding)),
      scalar_(group(model, ParamGroup::Scalar), adam_options(cfg, ParamGroup::Scalar)) {
  for (const auto& p : model.parameters()) all_params_.push_back(p.tensor);
  const at::Device device = all_params_.empty() ? at::Device(at::kCPU) : all_params_[0].device();
  for (at::Tensor* t : {&muon_lr_, &muon_momentum_, &embed_lr_, &scalar_lr_}) *t = step_scalar(0, device);
}

double Optimizers::muon_momentum(std::int64_t step) const {
  const double frac = cfg_.muon_momentum_warmup_steps > 0
                          ? std::min(1.0, static_cast<double>(step) / static_cast<double>(cfg_.muon_momentum_warmup_steps))
                          : 1.0;
  return (1 - frac) * cfg_.muon_momentum_warmup_start + frac * cfg_.muon_momentum;
}

void Optimizers::set_schedule(std::int64_t step, double lr_mult) {
  muon_lr_.fill_(cfg_.matrix_lr * lr_mult);
  muon_momentum_.fill_(muon_momentum(step));
  embed_lr_.fill_(cfg_.tied_embed_lr * lr_mult);
  scalar_lr_.fill_(cfg_.scalar_lr * lr_mult);
}

void Optimizers::apply() {
  if (cfg_.grad_clip_norm > 0) clip_grad_norm(all_params_, cfg_.grad_clip_norm);
  muon_.step(muon_lr_, muon_momentum_);
  embed_.step(embed_lr_);
  scalar_.step(scalar_lr_);
}

void Optimizers::step(std::int64_t step, double lr_mult) {
  set_schedule(step, lr_mult);
  apply();
}

void Optimizers::zero_grad() {
  for (auto& p : all_params_) p.mutable_grad() = at::Tensor();
}

std::vector<at::Tensor> Optimizers::state() const {
  std::vector<at::Tensor> s = muon_.state();
  for (const auto& t : embed_.state()) s.push_back(t);
  for (const auto& t : scalar_.state()) s.push_back(t);
  return s;
}

std::vector<int> Optimizers::state_owners() const {
  std::vector<int> owners;
  for (std::size_t i = 0; i < muon_.state().size(); ++i) owners.push_back(muon_.owner(i));
  owners.resize(owners.size() + embed_.state().size() + scalar_.state().size(), 0);
  return owners;
}

}  // namespace pgolf
