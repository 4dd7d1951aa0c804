// What the fused CUDA kernels (src/kernels/<op>.cu) share: loads and stores
// of float32 or bf16 data in float32, warp sums, launch sizes, per-channel
// sums without atomics, error checks.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "launch.h"

namespace pgolf::cuda {

__device__ inline float load(const float* p, std::int64_t i) { return p[i]; }
__device__ inline float load(const __nv_bfloat16* p, std::int64_t i) { return __bfloat162float(p[i]); }
__device__ inline void store(float* p, std::int64_t i, float v) { p[i] = v; }
__device__ inline void store(__nv_bfloat16* p, std::int64_t i, float v) { p[i] = __float2bfloat16(v); }

// Sum over the 32 lanes of a warp, the result in every lane.
__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

inline void check(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Blocks for a grid-stride loop over n elements (at most 65,535 * 8).
inline unsigned grid_for(std::int64_t n) {
  const std::int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks > 524280 ? 524280 : blocks);
}
// Blocks for one warp per row.
inline unsigned grid_for_rows(std::int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

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
inline std::size_t slice_bytes(Kernel kernel, std::int64_t width) {
  const std::size_t bytes = static_cast<std::size_t>(kRowsPerBlock * width) * sizeof(float);
  if (bytes > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  return bytes;
}
inline unsigned partial_grid(std::int64_t rows) { return static_cast<unsigned>(column_partial_blocks(rows)); }

}  // namespace pgolf::cuda
