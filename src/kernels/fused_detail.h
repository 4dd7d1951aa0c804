// What the fused ops' implementations (src/kernels/<op>.cpp) share: the type
// the arithmetic runs in, the per-channel partial sums of the CPU loops, and
// the handles their CUDA launches take.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>
#include <limits>
#include <type_traits>

// The CUDA launches: in a build with the CUDA path and the kernels' sources
// (the CUDA_KERNELS component, config/components.h); elsewhere the CPU loops.
#if defined(PGOLF_WITH_CUDA) && PGOLF_HAS_CUDA_KERNELS
#define PGOLF_CUDA_KERNELS 1
#include <c10/cuda/CUDAStream.h>
#else
#define PGOLF_CUDA_KERNELS 0
#endif

#include "launch.h"

namespace pgolf::fused_detail {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The arithmetic type of a data type: double for double, else float.
template <class T>
using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
inline at::ScalarType acc_dtype(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// The epsilon at::rms_norm takes when none is given: that of the type it computes in.
inline double rms_norm_eps(at::ScalarType dtype) {
  return dtype == at::kDouble ? std::numeric_limits<double>::epsilon() : std::numeric_limits<float>::epsilon();
}

// Per-channel gradients are summed over rows in chunks of this many rows, one
// partial row per chunk, then the partials in order: the sum does not depend
// on how the CPU's threads split the rows.
constexpr std::int64_t kCpuPartialRows = 64;
inline std::int64_t cpu_partial_count(std::int64_t rows) { return (rows + kCpuPartialRows - 1) / kCpuPartialRows; }

// Runs body(c, row0, row1) for each chunk c of kCpuPartialRows rows, chunks in parallel.
template <class Body>
void for_row_chunks(std::int64_t rows, const Body& body) {
  at::parallel_for(0, cpu_partial_count(rows), 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c) body(c, c * kCpuPartialRows, std::min(rows, (c + 1) * kCpuPartialRows));
  });
}

// The per-channel partials [chunks or blocks, width] for `rows` rows of x's op.
inline at::Tensor channel_partials(const at::Tensor& x, std::int64_t rows, std::int64_t width) {
#if PGOLF_CUDA_KERNELS
  if (x.is_cuda()) return at::empty({cuda::column_partial_blocks(rows), width}, x.options().dtype(at::kFloat));
#endif
  return at::empty({cpu_partial_count(rows), width}, x.options().dtype(acc_dtype(x)));
}

#if PGOLF_CUDA_KERNELS
inline void* stream_of(const at::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }
inline bool is_bf16(const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kFloat, "fused CUDA ops take float32 or bfloat16, got ",
              t.scalar_type());
  return t.scalar_type() == at::kBFloat16;
}
#endif

}  // namespace pgolf::fused_detail
