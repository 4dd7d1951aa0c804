// The CUDA kernels of relu2.h: fused_math.h's arithmetic in a grid-stride loop.
#include "cuda_kernels.cuh"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/relu2.h"

namespace pgolf::cuda {

namespace {

namespace fm = fused_math;

template <class T>
__global__ void leaky_relu2_forward_kernel(const T* x, T* y, std::int64_t n, float slope) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    store(y, i, fm::leaky_relu2(load(x, i), slope));
}

template <class T>
__global__ void leaky_relu2_backward_kernel(const T* x, const T* gy, T* gx, std::int64_t n, float slope) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    store(gx, i, load(gy, i) * fm::leaky_relu2_grad(load(x, i), slope));
}

}  // namespace

void leaky_relu2_forward(const void* x, void* y, bool bf16, std::int64_t n, float slope, void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16)
    leaky_relu2_forward_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(x),
                                                                 static_cast<__nv_bfloat16*>(y), n, slope);
  else
    leaky_relu2_forward_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<const float*>(x), static_cast<float*>(y), n, slope);
  check("leaky_relu2_forward");
}

void leaky_relu2_backward(const void* x, const void* gy, void* gx, bool bf16, std::int64_t n, float slope, void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16)
    leaky_relu2_backward_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(x),
                                                                  static_cast<const __nv_bfloat16*>(gy),
                                                                  static_cast<__nv_bfloat16*>(gx), n, slope);
  else
    leaky_relu2_backward_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<const float*>(x), static_cast<const float*>(gy),
                                                                  static_cast<float*>(gx), n, slope);
  check("leaky_relu2_backward");
}

}  // namespace pgolf::cuda
