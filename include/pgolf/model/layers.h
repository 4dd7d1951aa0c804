// The layer maths of docs/MODEL.md ("The model") as plain functions on tensors. The model in
// model.h composes them; tests check each against a slow re-computation.
#pragma once
#include <ATen/ATen.h>

#include "pgolf/config/config.h"

#include <string>
#include <utility>
#include <vector>

namespace pgolf {

// RMSNorm without weight over the last dimension:
//   x / sqrt(mean(x^2) + eps), eps = machine epsilon of x's dtype.
at::Tensor rms_norm(const at::Tensor& x);

// x @ w^T with w cast to x's dtype (weights are stored fp32, activations may be bf16).
at::Tensor cast_linear(const at::Tensor& x, const at::Tensor& w);

// RoPE tables for positions 0..T-1 over d rotated dims (rotate-half layout):
//   inv_freq_j = base^(-2j/d), theta[t, j] = t * inv_freq_j, j < d/2.
// Returns (cos theta, sin theta), each [T, d/2], float32.
std::pair<at::Tensor, at::Tensor> rope_tables(std::int64_t T, std::int64_t d, double base, at::Device device);
// x [..., T, D]; the first d = 2 * cos.size(-1) dims are rotated, the rest pass
// through (partial RoPE when d < D):
//   [x1, x2, rest] (x1, x2 halves of the first d)  ->  [x1 cos + x2 sin, -x1 sin + x2 cos, rest].
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
// NTK-scaled RoPE base for sequences of length T over d rotated dims when the
// tables were built for `built_len` (0 = no scaling):
//   base * (T / built_len)^(d / (d - 2))  if T > built_len, else base.
double ntk_rope_base(double base, std::int64_t T, std::int64_t built_len, std::int64_t d);

// SmearGate: g = sigmoid(gate); x_i = (1-g) x_i + g x_{i-1}, x_{-1} = 0. x [B, T, D].
at::Tensor smear_gate(const at::Tensor& x, const at::Tensor& gate);

// The BOS-aware SmearGate: the gate reads the current position, and no
// position holding `bos_id` takes anything from the one before it (which
// belongs to another document):
//   e_t + lambda * sigmoid(w . e_t[0:12]) * e_{t-1} * [id_t != bos_id], t >= 1.
// x [B, T, D], ids [B, T], w [1, 12], lambda a scalar.
at::Tensor bos_smear_gate(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& w, const at::Tensor& lambda,
                          std::int64_t bos_id);

// BigramHash buckets, computed in int32 like the reference:
//   position 0 -> B-1;  i > 0 -> ((36313 t_i) XOR (27191 t_{i-1})) mod (B-1).
// tokens [B, T] (any integer type) -> int64 buckets [B, T].
at::Tensor bigram_buckets(const at::Tensor& tokens, std::int64_t num_buckets);

// Causal softmax attention with scale 1/sqrt(D); q [B, H, T, D], k and v
// [B, Hkv, T, D] with H a multiple of Hkv (grouped-query attention).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// The U-Net skip merges: plain x + w * skip, or gated lerp(w * skip, x, sigmoid(g)).
at::Tensor skip_add(const at::Tensor& x, const at::Tensor& skip, const at::Tensor& w, const at::Tensor& g);
at::Tensor skip_lerp(const at::Tensor& x, const at::Tensor& skip, const at::Tensor& w, const at::Tensor& g);

// The sparse attention output gate: y [B, T, H, hd] times
// sigmoid(0.5 * n[..., 0:12] . w[h]) per position and head, n [B, T, D] the
// normed attention input, w [H, 12].
at::Tensor attn_output_gate(const at::Tensor& y, const at::Tensor& n, const at::Tensor& w);

// c * tanh(x / c)
at::Tensor softcap(const at::Tensor& x, double c);

}  // namespace pgolf
