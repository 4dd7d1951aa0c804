#include "pgolf/quant.h"

#include <sstream>

#include "pgolf/model.h"

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

}  // namespace pgolf
