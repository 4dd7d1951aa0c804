// The CUDA kernels of smear_norm.h: one warp per position, fused_math.h's
// arithmetic, per-channel gradient sums without atomics.
#include "cuda_kernels.cuh"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/smear_norm.h"

namespace pgolf::cuda {

namespace {

namespace fm = fused_math;

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

}  // namespace pgolf::cuda
