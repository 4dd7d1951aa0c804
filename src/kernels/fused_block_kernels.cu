// The fused CUDA kernels of a block's row ops (fused_cuda.h): the residual
// arithmetic with its RMSNorm, the embedding's SmearGate with its RMSNorm,
// and XSA. The arithmetic is fused_math.h's, as in the CPU loops of
// src/kernels/fused_block.cpp; this file adds the launch: one warp per row, lane l
// taking elements l, l+32, ..., and the per-channel gradient sums.
#include "cuda_kernels.cuh"
#include "pgolf/kernels/fused_cuda.h"
#include "pgolf/kernels/fused_math.h"

namespace pgolf::cuda {

namespace {

namespace fm = fused_math;

constexpr std::int64_t kPartialBlocks = 256;

// This warp's row in a one-warp-per-row launch.
__device__ inline std::int64_t warp_row() { return static_cast<std::int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32; }
__device__ inline int lane_id() { return static_cast<int>(threadIdx.x % 32); }

// Per-channel sums without atomics: warp w adds into its own shared slice
// of `width` floats (its lanes own distinct channels); flush_slices then sums
// the block's slices in warp order into partial[blockIdx.x]. Every warp of
// the block must reach flush_slices.
__device__ inline float* zeroed_slice(float* shared, std::int64_t width) {
  float* slice = shared + (threadIdx.x / 32) * width;
  for (std::int64_t i = lane_id(); i < width; i += 32) slice[i] = 0;
  __syncwarp();  // a lane may later add to a channel another lane zeroed
  return slice;
}
__device__ inline void flush_slices(const float* shared, std::int64_t width, float* partial) {
  __syncthreads();
  for (std::int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    float s = 0;
    for (int w = 0; w < kRowsPerBlock; ++w) s += shared[w * width + i];
    partial[blockIdx.x * width + i] = s;
  }
}

// Shared memory for `width` floats per warp; beyond 48 KiB a kernel must ask.
template <class Kernel>
std::size_t slice_bytes(Kernel kernel, std::int64_t width) {
  const std::size_t bytes = static_cast<std::size_t>(kRowsPerBlock * width) * sizeof(float);
  if (bytes > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  return bytes;
}
unsigned partial_grid(std::int64_t rows) { return static_cast<unsigned>(column_partial_blocks(rows)); }

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

// The row of position `row` and whether it has a position before / after it
// in its sequence (the smear reads the one before, its backward the one after).
struct SeqRow {
  std::int64_t base;
  bool has_prev, has_next;
};
__device__ inline SeqRow seq_row(std::int64_t row, std::int64_t seq, std::int64_t dim) {
  return {row * dim, row % seq != 0, (row + 1) % seq != 0};
}
template <class T>
__device__ inline float prev_of(const T* x, const SeqRow& r, std::int64_t dim, std::int64_t i) {
  return r.has_prev ? load(x, r.base - dim + i) : 0.0f;
}
template <class T>
__device__ inline float row_rms_inverse(const T* x, std::int64_t base, std::int64_t dim, float eps) {
  float ss = 0;
  for (std::int64_t i = lane_id(); i < dim; i += 32) ss += load(x, base + i) * load(x, base + i);
  return fm::rms_inverse(warp_sum(ss), static_cast<float>(dim), eps);
}

// smear_first: out = r s, s = smear(x_t, x_{t-1}, g); else out = smear(r_t x_t, r_{t-1} x_{t-1}, g).
template <class T, bool SmearFirst>
__global__ void smear_norm_forward_kernel(const T* x, const float* g, T* out, std::int64_t rows, std::int64_t seq,
                                          std::int64_t dim, float eps) {
  const std::int64_t row = warp_row();
  if (row >= rows) return;
  const SeqRow sr = seq_row(row, seq, dim);
  if constexpr (SmearFirst) {
    float ss = 0;
    for (std::int64_t i = lane_id(); i < dim; i += 32) {
      const float v = fm::smear(load(x, sr.base + i), prev_of(x, sr, dim, i), g[i]);
      ss += v * v;
    }
    const float r = fm::rms_inverse(warp_sum(ss), static_cast<float>(dim), eps);
    for (std::int64_t i = lane_id(); i < dim; i += 32)
      store(out, sr.base + i, r * fm::smear(load(x, sr.base + i), prev_of(x, sr, dim, i), g[i]));
  } else {
    const float rc = row_rms_inverse(x, sr.base, dim, eps);
    const float rp = sr.has_prev ? row_rms_inverse(x, sr.base - dim, dim, eps) : 0.0f;
    for (std::int64_t i = lane_id(); i < dim; i += 32)
      store(out, sr.base + i, fm::smear(rc * load(x, sr.base + i), rp * prev_of(x, sr, dim, i), g[i]));
  }
}

// The RMSNorm backward of the smeared row s_t = smear(x_t, x_{t-1}, g) at
// `base` (SmearFirst): its r and dot = sum(gout_t * r s_t).
struct NormStats {
  float r, dot;
};
template <class T>
__device__ inline NormStats smeared_stats(const T* x, const T* gout, const float* g, const SeqRow& sr, std::int64_t dim,
                                          float eps) {
  float ss = 0;
  for (std::int64_t i = lane_id(); i < dim; i += 32) {
    const float v = fm::smear(load(x, sr.base + i), prev_of(x, sr, dim, i), g[i]);
    ss += v * v;
  }
  const float r = fm::rms_inverse(warp_sum(ss), static_cast<float>(dim), eps);
  float dot = 0;
  for (std::int64_t i = lane_id(); i < dim; i += 32)
    dot += load(gout, sr.base + i) * r * fm::smear(load(x, sr.base + i), prev_of(x, sr, dim, i), g[i]);
  return {r, warp_sum(dot)};
}

// SmearFirst: gs_t = rms_norm_back(gout_t), gx_t = smear(gs_t, gs_{t+1}, g),
// gate sums smear_gate_grad(x_t, x_{t-1}) gs_t. Else: gn_t = smear(gout_t,
// gout_{t+1}, g), gx_t = rms_norm_back(gn_t), gate sums smear_gate_grad(n_t, n_{t-1}) gout_t.
template <class T, bool SmearFirst>
__global__ void smear_norm_backward_kernel(const T* x, const float* g, const T* gout, T* gx, float* partial, std::int64_t rows,
                                           std::int64_t seq, std::int64_t dim, float eps) {
  extern __shared__ float shared[];
  float* acc = zeroed_slice(shared, dim);
  const float count = static_cast<float>(dim);
  for (std::int64_t row = warp_row(); row < rows; row += static_cast<std::int64_t>(gridDim.x) * kRowsPerBlock) {
    const SeqRow sr = seq_row(row, seq, dim);
    if constexpr (SmearFirst) {
      const SeqRow next = seq_row(row + 1, seq, dim);
      const NormStats cur = smeared_stats(x, gout, g, sr, dim, eps);
      const NormStats nxt = sr.has_next ? smeared_stats(x, gout, g, next, dim, eps) : NormStats{0, 0};
      for (std::int64_t i = lane_id(); i < dim; i += 32) {
        const float xc = load(x, sr.base + i), xp = prev_of(x, sr, dim, i);
        const float gs = fm::rms_norm_back(load(gout, sr.base + i), cur.r * fm::smear(xc, xp, g[i]), cur.dot, cur.r, count);
        const float gs_next =
            sr.has_next ? fm::rms_norm_back(load(gout, next.base + i), nxt.r * fm::smear(load(x, next.base + i), xc, g[i]),
                                            nxt.dot, nxt.r, count)
                        : 0.0f;
        store(gx, sr.base + i, fm::smear(gs, gs_next, g[i]));
        acc[i] += fm::smear_gate_grad(xc, xp, g[i]) * gs;
      }
    } else {
      const float rc = row_rms_inverse(x, sr.base, dim, eps);
      const float rp = sr.has_prev ? row_rms_inverse(x, sr.base - dim, dim, eps) : 0.0f;
      auto gn = [&](std::int64_t i) {
        return fm::smear(load(gout, sr.base + i), sr.has_next ? load(gout, sr.base + dim + i) : 0.0f, g[i]);
      };
      float dot = 0;
      for (std::int64_t i = lane_id(); i < dim; i += 32) dot += gn(i) * rc * load(x, sr.base + i);
      dot = warp_sum(dot);
      for (std::int64_t i = lane_id(); i < dim; i += 32) {
        const float n = rc * load(x, sr.base + i);
        store(gx, sr.base + i, fm::rms_norm_back(gn(i), n, dot, rc, count));
        acc[i] += fm::smear_gate_grad(n, rp * prev_of(x, sr, dim, i), g[i]) * load(gout, sr.base + i);
      }
    }
  }
  flush_slices(shared, dim, partial);
}

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
template <class T, bool SmearFirst>
void smear_norm_forward_as(const void* x, const float* g, void* out, std::int64_t rows, std::int64_t seq, std::int64_t dim,
                           float eps, cudaStream_t stream) {
  smear_norm_forward_kernel<T, SmearFirst><<<grid_for_rows(rows), kThreads, 0, stream>>>(
      static_cast<const T*>(x), g, static_cast<T*>(out), rows, seq, dim, eps);
}
template <class T, bool SmearFirst>
void smear_norm_backward_as(const void* x, const float* g, const void* gout, void* gx, float* partial, std::int64_t rows,
                            std::int64_t seq, std::int64_t dim, float eps, cudaStream_t stream) {
  auto kernel = smear_norm_backward_kernel<T, SmearFirst>;
  kernel<<<partial_grid(rows), kThreads, slice_bytes(kernel, dim), stream>>>(
      static_cast<const T*>(x), g, static_cast<const T*>(gout), static_cast<T*>(gx), partial, rows, seq, dim, eps);
}

}  // namespace

std::int64_t column_partial_blocks(std::int64_t rows) {
  const std::int64_t needed = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  return needed < 1 ? 1 : needed < kPartialBlocks ? needed : kPartialBlocks;
}

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

void smear_norm_forward(const void* x, const float* g, void* out, bool bf16, std::int64_t rows, std::int64_t seq,
                        std::int64_t dim, bool smear_first, float eps, void* stream) {
  if (rows == 0) return;
  auto st = static_cast<cudaStream_t>(stream);
  if (bf16 && smear_first)
    smear_norm_forward_as<__nv_bfloat16, true>(x, g, out, rows, seq, dim, eps, st);
  else if (bf16)
    smear_norm_forward_as<__nv_bfloat16, false>(x, g, out, rows, seq, dim, eps, st);
  else if (smear_first)
    smear_norm_forward_as<float, true>(x, g, out, rows, seq, dim, eps, st);
  else
    smear_norm_forward_as<float, false>(x, g, out, rows, seq, dim, eps, st);
  check("smear_norm_forward");
}

void smear_norm_backward(const void* x, const float* g, const void* gout, void* gx, float* partial, bool bf16, std::int64_t rows,
                         std::int64_t seq, std::int64_t dim, bool smear_first, float eps, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  if (bf16 && smear_first)
    smear_norm_backward_as<__nv_bfloat16, true>(x, g, gout, gx, partial, rows, seq, dim, eps, st);
  else if (bf16)
    smear_norm_backward_as<__nv_bfloat16, false>(x, g, gout, gx, partial, rows, seq, dim, eps, st);
  else if (smear_first)
    smear_norm_backward_as<float, true>(x, g, gout, gx, partial, rows, seq, dim, eps, st);
  else
    smear_norm_backward_as<float, false>(x, g, gout, gx, partial, rows, seq, dim, eps, st);
  check("smear_norm_backward");
}

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
