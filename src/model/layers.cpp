#include "pgolf/model/layers.h"

#include <cmath>
#include <limits>

namespace pgolf {

at::Tensor rms_norm(const at::Tensor& x) {
  // at::rms_norm with eps unset uses the machine epsilon of x's dtype (as the reference does).
  return at::rms_norm(x, {x.size(-1)});
}

at::Tensor cast_linear(const at::Tensor& x, const at::Tensor& w) { return at::linear(x, w.to(x.scalar_type())); }

std::pair<at::Tensor, at::Tensor> rope_tables(std::int64_t T, std::int64_t d, double base, at::Device device) {
  auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  at::Tensor inv_freq = 1.0 / at::pow(base, at::arange(0, d, 2, f32) / static_cast<double>(d));
  at::Tensor theta = at::outer(at::arange(T, f32), inv_freq);
  return {theta.cos(), theta.sin()};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const std::int64_t half = cos.size(-1), D = x.size(-1);
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor c = cos.to(x.scalar_type()), s = sin.to(x.scalar_type());
  if (2 * half == D) return at::cat({x1 * c + x2 * s, x2 * c - x1 * s}, -1);
  return at::cat({x1 * c + x2 * s, x2 * c - x1 * s, x.narrow(-1, 2 * half, D - 2 * half)}, -1);
}

double ntk_rope_base(double base, std::int64_t T, std::int64_t built_len, std::int64_t d) {
  if (built_len <= 0 || T <= built_len) return base;
  return base * std::pow(static_cast<double>(T) / static_cast<double>(built_len),
                         static_cast<double>(d) / static_cast<double>(d - 2));
}

at::Tensor smear_gate(const at::Tensor& x, const at::Tensor& gate) {
  at::Tensor g = at::sigmoid(gate.to(x.scalar_type()));
  const std::int64_t T = x.size(1);
  at::Tensor prev = at::constant_pad_nd(x.narrow(1, 0, T - 1), {0, 0, 1, 0});
  return (1 - g) * x + g * prev;
}

at::Tensor bos_smear_gate(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& w, const at::Tensor& lambda,
                          std::int64_t bos_id) {
  const std::int64_t T = x.size(1);
  at::Tensor prev = at::constant_pad_nd(x.narrow(1, 0, T - 1), {0, 0, 1, 0});
  at::Tensor g = at::sigmoid(at::matmul(x.narrow(-1, 0, kSmearGateDims), w.t()));  // [B, T, 1]
  at::Tensor keep = (ids != bos_id).unsqueeze(-1).to(x.scalar_type());
  return x + lambda * g * prev * keep;
}

at::Tensor bigram_buckets(const at::Tensor& tokens, std::int64_t num_buckets) {
  const std::int64_t mod = num_buckets - 1;
  at::Tensor t = tokens.to(at::kInt);
  const std::int64_t T = t.size(-1);
  at::Tensor cur = t.narrow(-1, 1, T - 1), prev = t.narrow(-1, 0, T - 1);
  at::Tensor h = at::remainder(at::bitwise_xor(cur * 36313, prev * 27191), mod);
  at::Tensor first = at::full_like(t.narrow(-1, 0, 1), mod);
  return at::cat({first, h}, -1).to(at::kLong);
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const bool gqa = q.size(1) != k.size(1);
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, std::nullopt, gqa);
}

at::Tensor skip_add(const at::Tensor& x, const at::Tensor& skip, const at::Tensor& w, const at::Tensor&) {
  return x + w * skip;
}

at::Tensor skip_lerp(const at::Tensor& x, const at::Tensor& skip, const at::Tensor& w, const at::Tensor& g) {
  return at::lerp(w * skip, x, at::sigmoid(g));
}

at::Tensor attn_output_gate(const at::Tensor& y, const at::Tensor& n, const at::Tensor& w) {
  const at::Tensor g = at::sigmoid(0.5 * at::matmul(n.narrow(-1, 0, kAttnGateDims), w.t()));  // [B, T, H]
  return y * g.unsqueeze(-1);
}

at::Tensor softcap(const at::Tensor& x, double c) { return c * at::tanh(x / c); }

}  // namespace pgolf
