// The CUDA kernels of residual_norm.h: one warp per row, fused_math.h's
// arithmetic, per-channel gradient sums without atomics.
#include "cuda_kernels.cuh"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/residual_norm.h"

namespace pgolf::cuda {

namespace {

namespace fm = fused_math;

// out = p x + q y; n = s r out, r = rms_inverse of out's row.
template <class T>
__global__ void residual_norm_forward_kernel(const T* x, const T* y, const float* p, const float* q, T* out, T* n,
                                             std::int64_t rows, std::int64_t dim, float s, float eps) {
  const std::int64_t row = warp_row();
  if (row >= rows) return;
  const std::int64_t b = row * dim;
  float ss = 0;
  for (std::int64_t i = lane_id(); i < dim; i += 32) {
    const float o = fm::residual_mix(load(x, b + i), load(y, b + i), p[i], q[i]);
    store(out, b + i, o);
    ss += o * o;
  }
  const float r = fm::rms_inverse(warp_sum(ss), static_cast<float>(dim), eps);
  for (std::int64_t i = lane_id(); i < dim; i += 32)
    store(n, b + i, s * r * fm::residual_mix(load(x, b + i), load(y, b + i), p[i], q[i]));
}

// gt = gout + rms_norm_back(s gn); gx = p gt, gy = q gt; channel sums of x gt and y gt.
template <class T>
__global__ void residual_norm_backward_kernel(const T* x, const T* y, const float* p, const float* q, const T* gout, const T* gn,
                                              T* gx, T* gy, float* partial, std::int64_t rows, std::int64_t dim, float s,
                                              float eps) {
  extern __shared__ float shared[];
  float* acc = zeroed_slice(shared, 2 * dim);
  const float count = static_cast<float>(dim);
  for (std::int64_t row = warp_row(); row < rows; row += static_cast<std::int64_t>(gridDim.x) * kRowsPerBlock) {
    const std::int64_t b = row * dim;
    float ss = 0;
    for (std::int64_t i = lane_id(); i < dim; i += 32) {
      const float o = fm::residual_mix(load(x, b + i), load(y, b + i), p[i], q[i]);
      ss += o * o;
    }
    const float r = fm::rms_inverse(warp_sum(ss), count, eps);
    float dot = 0;
    for (std::int64_t i = lane_id(); i < dim; i += 32)
      dot += s * load(gn, b + i) * r * fm::residual_mix(load(x, b + i), load(y, b + i), p[i], q[i]);
    dot = warp_sum(dot);
    for (std::int64_t i = lane_id(); i < dim; i += 32) {
      const float xi = load(x, b + i), yi = load(y, b + i);
      const float o = fm::residual_mix(xi, yi, p[i], q[i]);
      const float gt = load(gout, b + i) + fm::rms_norm_back(s * load(gn, b + i), r * o, dot, r, count);
      store(gx, b + i, p[i] * gt);
      store(gy, b + i, q[i] * gt);
      acc[i] += xi * gt;
      acc[dim + i] += yi * gt;
    }
  }
  flush_slices(shared, 2 * dim, partial);
}

// The launches, by data type.
template <class T>
void residual_norm_forward_as(const void* x, const void* y, const float* p, const float* q, void* out, void* n,
                              std::int64_t rows, std::int64_t dim, float s, float eps, cudaStream_t stream) {
  residual_norm_forward_kernel<T><<<grid_for_rows(rows), kThreads, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(y), p, q, static_cast<T*>(out), static_cast<T*>(n), rows, dim, s, eps);
}
template <class T>
void residual_norm_backward_as(const void* x, const void* y, const float* p, const float* q, const void* gout, const void* gn,
                               void* gx, void* gy, float* partial, std::int64_t rows, std::int64_t dim, float s, float eps,
                               cudaStream_t stream) {
  auto kernel = residual_norm_backward_kernel<T>;
  kernel<<<partial_grid(rows), kThreads, slice_bytes(kernel, 2 * dim), stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(y), p, q, static_cast<const T*>(gout), static_cast<const T*>(gn),
      static_cast<T*>(gx), static_cast<T*>(gy), partial, rows, dim, s, eps);
}


}  // namespace

void residual_norm_forward(const void* x, const void* y, const float* p, const float* q, void* out, void* n, bool bf16,
                           std::int64_t rows, std::int64_t dim, float s, float eps, void* stream) {
  if (rows == 0) return;
  auto st = static_cast<cudaStream_t>(stream);
  if (bf16)
    residual_norm_forward_as<__nv_bfloat16>(x, y, p, q, out, n, rows, dim, s, eps, st);
  else
    residual_norm_forward_as<float>(x, y, p, q, out, n, rows, dim, s, eps, st);
  check("residual_norm_forward");
}

void residual_norm_backward(const void* x, const void* y, const float* p, const float* q, const void* gout, const void* gn,
                            void* gx, void* gy, float* partial, bool bf16, std::int64_t rows, std::int64_t dim, float s, float eps,
                            void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  if (bf16)
    residual_norm_backward_as<__nv_bfloat16>(x, y, p, q, gout, gn, gx, gy, partial, rows, dim, s, eps, st);
  else
    residual_norm_backward_as<float>(x, y, p, q, gout, gn, gx, gy, partial, rows, dim, s, eps, st);
  check("residual_norm_backward");
}

}  // namespace pgolf::cuda
