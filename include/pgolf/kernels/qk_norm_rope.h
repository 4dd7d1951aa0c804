// The queries' and keys' RMSNorm, RoPE and gain: the reference the model's
// unfused attention computes, the fused op (FUSED_KERNELS) that replaces it
// and its CUDA launchers (src/kernels/qk_norm_rope.{cpp,cu}).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace pgolf {

// Reference: apply_rope(rms_norm(x), cos, sin) * gain per head, for the
// queries or keys x [B, T, H, hd], as [B, T, H, hd]; cos, sin [T, R/2]
// float32 from rope_tables (R rotated dims; the rest pass), gain [H]
// (undefined: 1, the keys).
at::Tensor qk_norm_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain);

// Fused: qk_norm_rope for contiguous x, gain float32. One pass per head
// vector: the RMSNorm's sum of squares, then the rotation and the gain; the
// backward recomputes the norm from x.
at::Tensor fused_qk_norm_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain);

namespace cuda {
// One warp per head vector (rows = B*T*H vectors of hd, head h = row % heads):
// y = fused_qk_norm_rope(x); the backward writes gx and, when gain is given,
// ggain_rows[row] = sum(gy * rotated n) (summed per head by the caller).
void qk_norm_rope_forward(const void* x, void* y, bool bf16, const float* cos, const float* sin, const float* gain,
                          std::int64_t rows, std::int64_t seq, std::int64_t heads, std::int64_t hd, std::int64_t half,
                          float eps, void* stream);
void qk_norm_rope_backward(const void* x, const void* gy, void* gx, float* ggain_rows, bool bf16, const float* cos,
                           const float* sin, const float* gain, std::int64_t rows, std::int64_t seq, std::int64_t heads,
                           std::int64_t hd, std::int64_t half, float eps, void* stream);
}  // namespace cuda

}  // namespace pgolf
