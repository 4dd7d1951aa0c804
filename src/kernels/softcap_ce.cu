// The CUDA kernels of the fused soft-capped cross-entropy (softcap_ce.h):
// fused_math.h's arithmetic per element, block reductions per row.
#include "cuda_kernels.cuh"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/softcap_ce.h"

namespace pgolf::cuda {

namespace {

namespace fm = fused_math;

// Row r = blockIdx.x: each thread folds a strided share of the row into its
// own running log-sum-exp; a shared-memory tree merges them.
template <class T>
__global__ void softcap_ce_forward_kernel(const T* z, const std::int64_t* targets, std::int64_t vocab, float cap, float* loss,
                                          float* lse) {
  __shared__ float part_max[kThreads], part_sum[kThreads];  // (no constructors in shared memory)
  const std::int64_t r = blockIdx.x;
  const T* row = z + r * vocab;
  fm::LogSumExp<float> s;
  for (std::int64_t j = threadIdx.x; j < vocab; j += blockDim.x) fm::lse_add(s, fm::softcap(load(row, j), cap));
  part_max[threadIdx.x] = s.max;
  part_sum[threadIdx.x] = s.sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      fm::LogSumExp<float> a, b;
      a.max = part_max[threadIdx.x];
      a.sum = part_sum[threadIdx.x];
      b.max = part_max[threadIdx.x + stride];
      b.sum = part_sum[threadIdx.x + stride];
      a = fm::lse_merge(a, b);
      part_max[threadIdx.x] = a.max;
      part_sum[threadIdx.x] = a.sum;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    fm::LogSumExp<float> total;
    total.max = part_max[0];
    total.sum = part_sum[0];
    const float v = fm::lse_value(total);
    lse[r] = v;
    loss[r] = v - fm::softcap(load(row, targets[r]), cap);
  }
}

template <class T>
__global__ void softcap_ce_backward_kernel(T* z, const std::int64_t* targets, const float* lse, const float* g, std::int64_t rows,
                                           std::int64_t vocab, float cap) {
  const std::int64_t n = rows * vocab;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / vocab, j = i - r * vocab;
    store(z, i, fm::softcap_ce_grad(load(z, i), cap, lse[r], j == targets[r], g[r]));
  }
}

}  // namespace

void softcap_ce_forward(const void* z, bool bf16, const std::int64_t* targets, std::int64_t rows, std::int64_t vocab, float cap,
                        float* loss, float* lse, void* stream) {
  if (rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16)
    softcap_ce_forward_kernel<<<rows, kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(z), targets, vocab, cap, loss, lse);
  else
    softcap_ce_forward_kernel<<<rows, kThreads, 0, s>>>(static_cast<const float*>(z), targets, vocab, cap, loss, lse);
  check("softcap_ce_forward");
}

void softcap_ce_backward(void* z, bool bf16, const std::int64_t* targets, const float* lse, const float* g, std::int64_t rows,
                         std::int64_t vocab, float cap, void* stream) {
  if (rows == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const unsigned grid = grid_for(rows * vocab);
  if (bf16)
    softcap_ce_backward_kernel<<<grid, kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(z), targets, lse, g, rows, vocab, cap);
  else
    softcap_ce_backward_kernel<<<grid, kThreads, 0, s>>>(static_cast<float*>(z), targets, lse, g, rows, vocab, cap);
  check("softcap_ce_backward");
}

}  // namespace pgolf::cuda
