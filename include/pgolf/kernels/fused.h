// Fused ops (FUSED_KERNELS=1), each replacing an ATen composition named
// beside it, with its backward. The arithmetic is fused_math.h; on CUDA the
// kernels of fused_cuda.h run it, elsewhere CPU loops over the same
// functions (what the CPU tests check, in float32, float64 and bf16).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>

#include "pgolf/config/config.h"

namespace pgolf {

// Replaces at::cross_entropy_loss(softcap(at::linear(h, w), cap).to(float32),
// targets, reduction none): per-row loss [N] (float32; float64 for float64
// inputs) of hidden states h [N, D] against the tied head w [V, D] (h's dtype).
// Rows go in chunks of `chunk_rows`, so only one chunk's pre-cap logits
// [chunk, V] exist at a time, in h's dtype, never the whole batch's float32
// logits. Forward: one pass per row (online max / sum of exp), keeping the
// row's lse. Backward: recomputes each chunk's logits and turns them in place
// into the gradient with respect to them (fused_math::softcap_ce_grad), then
// grad_h = G w and grad_w = sum over chunks of G^T h (accumulated in float32).
at::Tensor fused_softcap_cross_entropy(const at::Tensor& h, const at::Tensor& w, const at::Tensor& targets, double cap,
                                       std::int64_t chunk_rows = 8192);

// Replaces at::leaky_relu(x, slope).square() (slope 0: at::relu(x).square()):
// one pass forward, one pass backward (grad_x = grad_y * 2 a(x) a'(x)).
at::Tensor fused_leaky_relu2(const at::Tensor& x, double slope);

// Replaces apply_rope(rms_norm(x), cos, sin) * gain (per head) on the queries
// or keys x [B, T, H, hd] (contiguous), with cos, sin [T, R/2] float32 from
// rope_tables (R rotated dims; the rest pass) and gain [H] float32 (undefined:
// 1, the keys). One pass per head vector: the RMSNorm's sum of squares, then
// the rotation and the gain; the backward recomputes the norm from x.
at::Tensor fused_qk_norm_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain);
// Replaces, for x, y [..., D] (contiguous, the same dtype) and per-channel
// p, q [D] float32 (p undefined: 1):
//   out = p.to(x) * x + q.to(x) * y;  n = rms_norm(out) * s
// a block's entry (resid_mix, y = x0) or its attention add (q = attn_scale),
// each with the RMSNorm that follows. Returns (out, n). One pass per row
// forward; the backward recomputes out and its norm, and sums the p and q
// gradients per channel in fixed row chunks (the same on every run).
std::pair<at::Tensor, at::Tensor> fused_residual_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& p,
                                                      const at::Tensor& q, double s);

// Replaces the embedding's SmearGate and RMSNorm for x [B, T, D] and the
// per-channel gate [D] float32, in either order (the BOS-aware gate is not fused):
//   smear_first: rms_norm(smear_gate(x, gate));  else smear_gate(rms_norm(x), gate).
// One pass per position (with the one before it) forward and backward.
at::Tensor fused_smear_norm(const at::Tensor& x, const at::Tensor& gate, bool smear_first);

// Replaces xsa(y, v) (layers.h) for y [B, T, H, hd] and v [B, T, Hkv, hd]:
// per position and KV group, each head's output less its projection on the
// unit value vector; one pass per group, the backward sums each group's
// heads into the value gradient. At most 32 heads per KV group.
at::Tensor fused_xsa(const at::Tensor& y, const at::Tensor& v);

// The epsilon at::rms_norm takes when none is given: that of the type it computes in.
double rms_norm_eps(at::ScalarType dtype);

// The row kernels, on z's device: for pre-cap logits z [n, V] and targets
// [n], loss[r] = lse[r] - softcap(z[r, y_r]) and lse[r] (both [n], float32, or
// float64 for float64 z); the backward overwrites z with the gradient with
// respect to it, given the rows' upstream gradient g [n] (lse's dtype).
void softcap_ce_rows(const at::Tensor& z, const at::Tensor& targets, double cap, const at::Tensor& loss, const at::Tensor& lse);
void softcap_ce_rows_backward(const at::Tensor& z, const at::Tensor& targets, const at::Tensor& lse, const at::Tensor& g, double cap);

// Whether the model uses the fused ops on `device`: FUSED_KERNELS on CUDA.
bool use_fused_kernels(const Config& cfg, const at::Device& device);

}  // namespace pgolf
