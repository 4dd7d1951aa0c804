// The CUDA kernels of xsa.h: one warp per position and KV group.
#include "cuda_kernels.cuh"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/xsa.h"

namespace pgolf::cuda {

namespace {

namespace fm = fused_math;

// The unit value vector of this warp's KV group: |v| clamped, u_i = v_i / |v|.
template <class T>
__device__ inline float value_norm(const T* v, std::int64_t base, std::int64_t hd) {
  float ss = 0;
  for (std::int64_t i = lane_id(); i < hd; i += 32) ss += load(v, base + i) * load(v, base + i);
  return fm::clamped_norm(warp_sum(ss));
}
// a = y_h . u for head vector y_h at `yb`.
template <class T>
__device__ inline float dot_unit(const T* y, std::int64_t yb, const T* v, std::int64_t vb, float norm, std::int64_t hd) {
  float a = 0;
  for (std::int64_t i = lane_id(); i < hd; i += 32) a += load(y, yb + i) * load(v, vb + i) / norm;
  return warp_sum(a);
}

template <class T>
__global__ void xsa_forward_kernel(const T* y, const T* v, T* out, std::int64_t groups, std::int64_t group, std::int64_t hd) {
  const std::int64_t row = warp_row();
  if (row >= groups) return;
  const std::int64_t vb = row * hd;
  const float norm = value_norm(v, vb, hd);
  for (std::int64_t h = 0; h < group; ++h) {
    const std::int64_t yb = (row * group + h) * hd;
    const float a = dot_unit(y, yb, v, vb, norm, hd);
    for (std::int64_t i = lane_id(); i < hd; i += 32) store(out, yb + i, fm::xsa_remove(load(y, yb + i), a, load(v, vb + i) / norm));
  }
}

constexpr int kMaxGroup = 32;

template <class T>
__global__ void xsa_backward_kernel(const T* y, const T* v, const T* g, T* gy, T* gv, std::int64_t groups, std::int64_t group,
                                    std::int64_t hd) {
  const std::int64_t row = warp_row();
  if (row >= groups) return;
  const std::int64_t vb = row * hd;
  const float norm = value_norm(v, vb, hd);
  const bool clamped = norm <= 1e-12f;
  float a[kMaxGroup], b[kMaxGroup], c = 0;
  for (std::int64_t h = 0; h < group; ++h) {
    const std::int64_t yb = (row * group + h) * hd;
    a[h] = dot_unit(y, yb, v, vb, norm, hd);
    b[h] = dot_unit(g, yb, v, vb, norm, hd);
    c -= 2 * a[h] * b[h];
    for (std::int64_t i = lane_id(); i < hd; i += 32) store(gy, yb + i, fm::xsa_remove(load(g, yb + i), b[h], load(v, vb + i) / norm));
  }
  for (std::int64_t i = lane_id(); i < hd; i += 32) {
    float gu = 0;
    for (std::int64_t h = 0; h < group; ++h) {
      const std::int64_t yb = (row * group + h) * hd;
      gu -= b[h] * load(y, yb + i) + a[h] * load(g, yb + i);
    }
    store(gv, vb + i, fm::xsa_value_grad(gu, c, load(v, vb + i) / norm, norm, clamped));
  }
}

}  // namespace

void xsa_forward(const void* y, const void* v, void* out, bool bf16, std::int64_t groups, std::int64_t group, std::int64_t hd,
                 void* stream) {
  if (groups == 0) return;
  if (group > kMaxGroup) throw std::invalid_argument("xsa_forward: at most 32 heads per KV group");
  auto st = static_cast<cudaStream_t>(stream);
  if (bf16)
    xsa_forward_kernel<<<grid_for_rows(groups), kThreads, 0, st>>>(
        static_cast<const __nv_bfloat16*>(y), static_cast<const __nv_bfloat16*>(v), static_cast<__nv_bfloat16*>(out), groups, group, hd);
  else
    xsa_forward_kernel<<<grid_for_rows(groups), kThreads, 0, st>>>(static_cast<const float*>(y), static_cast<const float*>(v),
                                                                   static_cast<float*>(out), groups, group, hd);
  check("xsa_forward");
}

void xsa_backward(const void* y, const void* v, const void* g, void* gy, void* gv, bool bf16, std::int64_t groups,
                  std::int64_t group, std::int64_t hd, void* stream) {
  if (groups == 0) return;
  if (group > kMaxGroup) throw std::invalid_argument("xsa_backward: at most 32 heads per KV group");
  auto st = static_cast<cudaStream_t>(stream);
  if (bf16)
    xsa_backward_kernel<<<grid_for_rows(groups), kThreads, 0, st>>>(
        static_cast<const __nv_bfloat16*>(y), static_cast<const __nv_bfloat16*>(v), static_cast<const __nv_bfloat16*>(g),
        static_cast<__nv_bfloat16*>(gy), static_cast<__nv_bfloat16*>(gv), groups, group, hd);
  else
    xsa_backward_kernel<<<grid_for_rows(groups), kThreads, 0, st>>>(static_cast<const float*>(y), static_cast<const float*>(v),
                                                                    static_cast<const float*>(g), static_cast<float*>(gy),
                                                                    static_cast<float*>(gv), groups, group, hd);
  check("xsa_backward");
}

}  // namespace pgolf::cuda
