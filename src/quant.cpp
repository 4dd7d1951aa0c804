#include "pgolf/quant.h"

#include <ATen/core/grad_mode.h>

#include <sstream>

namespace pgolf {

TensorPlan plan_tensor(const std::string& name, const at::Tensor& t, const Config& cfg) {
  auto contains = [&](const std::string& s) { return name.find(s) != std::string::npos; };
  if (!t.is_floating_point() || t.numel() <= 8192) return {Scheme::Fp16};
  if (is_control_tensor(name)) return {Scheme::Fp32};
  std::stringstream patterns(cfg.fp16_keep_name_patterns);
  for (std::string p; std::getline(patterns, p, ',');)
    if (!p.empty() && contains(p)) return {Scheme::Fp16};
  if (contains(".mlp.")) return {Scheme::IntRow, static_cast<int>(cfg.quant_mlp_bits)};
  if (contains("bigram") || contains(".attn.")) return {Scheme::IntRow, static_cast<int>(cfg.quant_attn_bits)};
  return {Scheme::Int8Clip, 8};
}

RowQuantized quantize_rows(const at::Tensor& w, int bits) {
  TORCH_CHECK(w.dim() == 2, "quantize_rows expects a matrix, got ", w.sizes());
  const double qmax = static_cast<double>((1 << (bits - 1)) - 1);
  at::Tensor w32 = w.detach().to(at::kFloat);
  at::Tensor scale = (w32.abs().amax(1) / qmax).clamp_min(1e-12).to(at::kHalf).clamp_min(6.103515625e-05);
  at::Tensor q = at::round(w32 / scale.to(at::kFloat).unsqueeze(1)).clamp(-qmax - 1, qmax).to(at::kChar);
  return {q, scale};
}

at::Tensor dequantize_rows(const RowQuantized& r) {
  return r.q.to(at::kFloat) * r.scale.to(at::kFloat).unsqueeze(1);
}

at::Tensor fake_quantize_rows(const at::Tensor& w, int bits) {
  at::Tensor deq = dequantize_rows(quantize_rows(w, bits)).to(w.scalar_type());
  return w + (deq - w).detach();
}

RowQuantized quantize_rows_int8_clipped(const at::Tensor& w) {
  at::Tensor w32 = w.detach().to(at::kFloat).reshape({w.dim() == 0 ? 1 : w.size(0), -1});
  at::Tensor clip = at::quantile(w32.abs(), 0.9999984, /*dim=*/1);
  at::Tensor clipped = at::maximum(at::minimum(w32, clip.unsqueeze(1)), -clip.unsqueeze(1));
  at::Tensor scale = (clip / 127.0).clamp_min(1.0 / 127.0).to(at::kHalf);
  at::Tensor q = at::round(clipped / scale.to(at::kFloat).unsqueeze(1)).clamp(-127, 127).to(at::kChar);
  return {q, scale};
}

std::int64_t prune_small_weights(const std::vector<NamedTensor>& params, double frac) {
  if (frac <= 0) return 0;
  at::NoGradGuard no_grad;
  std::int64_t zeroed = 0;
  for (const auto& p : params) {
    if (p.tensor.dim() != 2 || p.tensor.numel() <= 65536) continue;
    at::Tensor w = p.tensor.detach();
    at::Tensor threshold = at::quantile(w.abs().to(at::kFloat).flatten(), frac);
    at::Tensor mask = w.abs() < threshold.to(w.scalar_type());
    zeroed += mask.sum().item<std::int64_t>();
    w.masked_fill_(mask, 0);
  }
  return zeroed;
}

std::vector<QuantTensor> quantize_tensors(const std::vector<NamedTensor>& params, const Config& cfg) {
  std::vector<QuantTensor> out;
  for (const auto& p : params) {
    at::Tensor t = p.tensor.detach().to(at::kCPU);
    TensorPlan plan = plan_tensor(p.name, t, cfg);
    QuantTensor q{p.name, plan.scheme, plan.bits, t.sizes().vec(), {}, {}};
    if (plan.scheme == Scheme::Fp16 || plan.scheme == Scheme::Fp32) {
      q.data = t.to(plan.scheme == Scheme::Fp16 ? at::kHalf : at::kFloat).contiguous();
    } else {
      RowQuantized r = plan.scheme == Scheme::IntRow ? quantize_rows(t, plan.bits) : quantize_rows_int8_clipped(t);
      q.data = r.q.contiguous();
      q.scale = r.scale.contiguous();
    }
    out.push_back(std::move(q));
  }
  return out;
}

at::Tensor dequantize(const QuantTensor& q) {
  if (!q.scale.defined()) return q.data.to(at::kFloat).reshape(q.shape);
  return dequantize_rows({q.data.reshape({q.scale.numel(), -1}), q.scale}).reshape(q.shape);
}

const char* scheme_name(Scheme s) {
  switch (s) {
    case Scheme::Fp16: return "fp16";
    case Scheme::Fp32: return "fp32";
    case Scheme::IntRow: return "int-row";
    case Scheme::Int8Clip: return "int8-clip";
  }
  return "?";
}

}  // namespace pgolf
