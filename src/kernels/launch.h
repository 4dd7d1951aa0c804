// Launch geometry shared by the fused CUDA kernels (cuda_kernels.cuh) and the
// host code that sizes their outputs (fused_detail.h). Plain C++: no CUDA headers.
#pragma once
#include <cstdint>

namespace pgolf::cuda {

constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / 32;  // one warp per row

// Backward kernels that sum per-channel gradients run this many blocks (fewer
// for few rows), each writing its own partial row; the caller sums the
// partials. The count depends on `rows` only, so the sums are the same on
// every run and device.
constexpr std::int64_t kPartialBlocks = 256;
inline std::int64_t column_partial_blocks(std::int64_t rows) {
  const std::int64_t needed = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  return needed < 1 ? 1 : needed < kPartialBlocks ? needed : kPartialBlocks;
}

}  // namespace pgolf::cuda
