// What the fused ops' implementations (src/fused*.cpp) share: the type the
// arithmetic runs in, and the handles their CUDA launches take.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <type_traits>

#ifdef PGOLF_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace pgolf::fused_detail {

// The arithmetic type of a data type: double for double, else float.
template <class T>
using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
inline at::ScalarType acc_dtype(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// Per-channel gradients are summed over rows in chunks of this many rows, one
// partial row per chunk, then the partials in order: the sum does not depend
// on how the CPU's threads split the rows.
constexpr std::int64_t kCpuPartialRows = 64;
inline std::int64_t cpu_partial_count(std::int64_t rows) { return (rows + kCpuPartialRows - 1) / kCpuPartialRows; }

#ifdef PGOLF_WITH_CUDA
inline void* stream_of(const at::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }
inline bool is_bf16(const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kFloat, "fused CUDA ops take float32 or bfloat16, got ",
              t.scalar_type());
  return t.scalar_type() == at::kBFloat16;
}
#endif

}  // namespace pgolf::fused_detail
