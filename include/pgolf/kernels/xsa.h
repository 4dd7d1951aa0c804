// XSA: the reference the model's unfused attention computes, the fused op
// (FUSED_KERNELS) that replaces it and its CUDA launchers (src/kernels/xsa.{cpp,cu}).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace pgolf {

// Reference: subtract from each head's output its projection onto the unit
// value vector of the same position in the head's KV group: y -= (y . v^) v^.
// y [B, T, H, D], v [B, T, Hkv, D].
at::Tensor xsa(const at::Tensor& y, const at::Tensor& v);

// Fused: xsa per position and KV group, one pass per group; the backward sums
// each group's heads into the value gradient. At most 32 heads per KV group.
at::Tensor fused_xsa(const at::Tensor& y, const at::Tensor& v);

namespace cuda {
// One warp per position and KV group (groups = B*T*Hkv, `group` heads each,
// at most 32): out = xsa(y, v); the backward writes gy and gv.
void xsa_forward(const void* y, const void* v, void* out, bool bf16, std::int64_t groups, std::int64_t group, std::int64_t hd,
                 void* stream);
void xsa_backward(const void* y, const void* v, const void* g, void* gy, void* gv, bool bf16, std::int64_t groups,
                  std::int64_t group, std::int64_t hd, void* stream);
}  // namespace cuda

}  // namespace pgolf
