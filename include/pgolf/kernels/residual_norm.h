// A block's residual arithmetic with the RMSNorm after it: the reference the
// model's unfused blocks compute, the fused op (FUSED_KERNELS) that replaces
// it and its CUDA launchers (src/kernels/residual_norm.{cpp,cu}).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <utility>

namespace pgolf {

// Reference, for x, y [..., D] and per-channel p, q [D] (p undefined: 1):
//   out = p.to(x) * x + q.to(x) * y;  n = rms_norm(out) * s  (s = 1: rms_norm(out))
// a block's entry (resid_mix, y = x0) or its attention add (q = attn_scale),
// each with the RMSNorm that follows (s: LN_SCALE's factor). Returns (out, n).
std::pair<at::Tensor, at::Tensor> residual_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& p,
                                                const at::Tensor& q, double s);

// Fused: residual_norm for contiguous x, y of one dtype and float32 p, q. One
// pass per row forward; the backward recomputes out and its norm, and sums
// the p and q gradients per channel in fixed row chunks (the same on every run).
std::pair<at::Tensor, at::Tensor> fused_residual_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& p,
                                                      const at::Tensor& q, double s);

namespace cuda {
// One warp per row of D: out = residual_mix(x, y, p, q), n = s * rms_norm(out)
// (p null: 1). The backward writes gx, gy and partial [blocks, 2, D] (the
// per-channel sums of x * gt and y * gt, gt = out's total gradient).
void residual_norm_forward(const void* x, const void* y, const float* p, const float* q, void* out, void* n, bool bf16,
                           std::int64_t rows, std::int64_t dim, float s, float eps, void* stream);
void residual_norm_backward(const void* x, const void* y, const float* p, const float* q, const void* gout, const void* gn,
                            void* gx, void* gy, float* partial, bool bf16, std::int64_t rows, std::int64_t dim, float s, float eps,
                            void* stream);
}  // namespace cuda

}  // namespace pgolf
