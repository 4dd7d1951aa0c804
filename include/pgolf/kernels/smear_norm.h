// The embedding's SmearGate with its RMSNorm, in either order: the reference
// the model's unfused embedding computes, the fused op (FUSED_KERNELS) that
// replaces it and its CUDA launchers (src/kernels/smear_norm.{cpp,cu}).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace pgolf {

// Reference, for x [B, T, D] and the per-channel gate [D]:
//   smear_first: rms_norm(smear_gate(x, gate));  else smear_gate(rms_norm(x), gate).
at::Tensor smear_norm(const at::Tensor& x, const at::Tensor& gate, bool smear_first);

// Fused: smear_norm with a float32 gate (the BOS-aware gate is not fused).
// One pass per position (with the one before it) forward and backward.
at::Tensor fused_smear_norm(const at::Tensor& x, const at::Tensor& gate, bool smear_first);

namespace cuda {
// One warp per position (row = b * seq + t) of D, g = sigmoid(gate) [D]:
// out = SmearGate and RMSNorm in the given order. The backward writes gx and
// partial [blocks, D] of the gate's gradient.
void smear_norm_forward(const void* x, const float* g, void* out, bool bf16, std::int64_t rows, std::int64_t seq,
                        std::int64_t dim, bool smear_first, float eps, void* stream);
void smear_norm_backward(const void* x, const float* g, const void* gout, void* gx, float* partial, bool bf16, std::int64_t rows,
                         std::int64_t seq, std::int64_t dim, bool smear_first, float eps, void* stream);
}  // namespace cuda

}  // namespace pgolf
