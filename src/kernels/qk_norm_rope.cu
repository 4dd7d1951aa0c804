// The CUDA kernels of qk_norm_rope.h: one warp per head vector, fused_math.h's arithmetic.
#include "cuda_kernels.cuh"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/qk_norm_rope.h"

namespace pgolf::cuda {

namespace {

namespace fm = fused_math;

// This warp's head vector: where it starts, its lane, its position's RoPE
// tables, its head's gain and its RMSNorm factor r (all lanes take part in
// the sum of squares). False past the last row (for the whole warp).
struct HeadVector {
  std::int64_t base;
  int lane;
  const float *c, *s;
  float g, r;
};
template <class T>
__device__ inline bool head_vector(const T* x, const float* cos, const float* sin, const float* gain, std::int64_t rows,
                                   std::int64_t seq, std::int64_t heads, std::int64_t hd, std::int64_t half, float eps,
                                   HeadVector& v) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return false;
  v.lane = threadIdx.x % 32;
  v.base = row * hd;
  const std::int64_t pos = (row / heads) % seq;
  v.c = cos + pos * half;
  v.s = sin + pos * half;
  v.g = gain ? gain[row % heads] : 1.0f;
  float ss = 0;
  for (std::int64_t i = v.lane; i < hd; i += 32) ss += load(x, v.base + i) * load(x, v.base + i);
  v.r = fm::rms_inverse(warp_sum(ss), static_cast<float>(hd), eps);
  return true;
}

// One warp per head vector; lane l takes elements l, l+32, ... (rotated pairs
// (i, i+half) by their first index i < half, pass dims 2*half.. on their own).
template <class T>
__global__ void qk_norm_rope_forward_kernel(const T* x, T* y, const float* cos, const float* sin, const float* gain,
                                            std::int64_t rows, std::int64_t seq, std::int64_t heads, std::int64_t hd,
                                            std::int64_t half, float eps) {
  HeadVector v;
  if (!head_vector(x, cos, sin, gain, rows, seq, heads, hd, half, eps, v)) return;
  const std::int64_t base = v.base;
  const int lane = v.lane;
  const float *c = v.c, *s = v.s;
  const float g = v.g, r = v.r;
  for (std::int64_t i = lane; i < half; i += 32) {
    float a, b;
    fm::rope_rotate(r * load(x, base + i), r * load(x, base + i + half), c[i], s[i], a, b);
    store(y, base + i, g * a);
    store(y, base + i + half, g * b);
  }
  for (std::int64_t i = 2 * half + lane; i < hd; i += 32) store(y, base + i, g * r * load(x, base + i));
}

template <class T>
__global__ void qk_norm_rope_backward_kernel(const T* x, const T* gy, T* gx, float* ggain_rows, const float* cos, const float* sin,
                                             const float* gain, std::int64_t rows, std::int64_t seq, std::int64_t heads,
                                             std::int64_t hd, std::int64_t half, float eps) {
  HeadVector v;
  if (!head_vector(x, cos, sin, gain, rows, seq, heads, hd, half, eps, v)) return;
  const std::int64_t base = v.base;
  const int lane = v.lane;
  const float *c = v.c, *s = v.s;
  const float g = v.g, r = v.r;
  // Pass 1: sum(gy * rotated n) for the gain, sum(gn * n) for the norm.
  float gdot = 0, dot = 0;
  for (std::int64_t i = lane; i < half; i += 32) {
    const float na = r * load(x, base + i), nb = r * load(x, base + i + half);
    float a, b, ga, gb;
    fm::rope_rotate(na, nb, c[i], s[i], a, b);
    gdot += load(gy, base + i) * a + load(gy, base + i + half) * b;
    fm::rope_rotate_back(g * load(gy, base + i), g * load(gy, base + i + half), c[i], s[i], ga, gb);
    dot += ga * na + gb * nb;
  }
  for (std::int64_t i = 2 * half + lane; i < hd; i += 32) {
    const float n = r * load(x, base + i);
    gdot += load(gy, base + i) * n;
    dot += g * load(gy, base + i) * n;
  }
  gdot = warp_sum(gdot);
  dot = warp_sum(dot);
  if (ggain_rows && lane == 0) ggain_rows[base / hd] = gdot;
  // Pass 2: gx = rms_norm_back(gn).
  const float count = static_cast<float>(hd);
  for (std::int64_t i = lane; i < half; i += 32) {
    float ga, gb;
    fm::rope_rotate_back(g * load(gy, base + i), g * load(gy, base + i + half), c[i], s[i], ga, gb);
    store(gx, base + i, fm::rms_norm_back(ga, r * load(x, base + i), dot, r, count));
    store(gx, base + i + half, fm::rms_norm_back(gb, r * load(x, base + i + half), dot, r, count));
  }
  for (std::int64_t i = 2 * half + lane; i < hd; i += 32)
    store(gx, base + i, fm::rms_norm_back(g * load(gy, base + i), r * load(x, base + i), dot, r, count));
}

}  // namespace

void qk_norm_rope_forward(const void* x, void* y, bool bf16, const float* cos, const float* sin, const float* gain,
                          std::int64_t rows, std::int64_t seq, std::int64_t heads, std::int64_t hd, std::int64_t half, float eps,
                          void* stream) {
  if (rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const unsigned grid = grid_for_rows(rows);
  if (bf16)
    qk_norm_rope_forward_kernel<<<grid, kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), cos,
                                                           sin, gain, rows, seq, heads, hd, half, eps);
  else
    qk_norm_rope_forward_kernel<<<grid, kThreads, 0, s>>>(static_cast<const float*>(x), static_cast<float*>(y), cos, sin, gain, rows,
                                                           seq, heads, hd, half, eps);
  check("qk_norm_rope_forward");
}

void qk_norm_rope_backward(const void* x, const void* gy, void* gx, float* ggain_rows, bool bf16, const float* cos,
                           const float* sin, const float* gain, std::int64_t rows, std::int64_t seq, std::int64_t heads,
                           std::int64_t hd, std::int64_t half, float eps, void* stream) {
  if (rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const unsigned grid = grid_for_rows(rows);
  if (bf16)
    qk_norm_rope_backward_kernel<<<grid, kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(x),
                                                            static_cast<const __nv_bfloat16*>(gy), static_cast<__nv_bfloat16*>(gx),
                                                            ggain_rows, cos, sin, gain, rows, seq, heads, hd, half, eps);
  else
    qk_norm_rope_backward_kernel<<<grid, kThreads, 0, s>>>(static_cast<const float*>(x), static_cast<const float*>(gy),
                                                            static_cast<float*>(gx), ggain_rows, cos, sin, gain, rows, seq, heads,
                                                            hd, half, eps);
  check("qk_norm_rope_backward");
}

}  // namespace pgolf::cuda
