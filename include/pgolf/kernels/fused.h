// The fused ops (FUSED_KERNELS=1), one op per header beside this one, each
// holding its ATen reference (what the model's unfused path and the tests
// run), the fused entry point with its backward, and its CUDA launchers. The
// arithmetic is fused_math.h's; on CUDA the kernels of src/kernels/<op>.cu run
// it, elsewhere CPU loops over the same functions (what the CPU tests check,
// in float32, float64 and bf16).
#pragma once
#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

#include "pgolf/kernels/qk_norm_rope.h"
#include "pgolf/kernels/relu2.h"
#include "pgolf/kernels/residual_norm.h"
#include "pgolf/kernels/smear_norm.h"
#include "pgolf/kernels/softcap_ce.h"
#include "pgolf/kernels/xsa.h"

namespace pgolf {

#if defined(PGOLF_WITH_CUDA) && PGOLF_HAS_CUDA_KERNELS
// src/kernels/device_check.cu: the compute capabilities the kernels are built
// for ("8.0 8.6 8.9 9.0+PTX"), and why they cannot run on a CUDA device
// (empty when they can).
const char* cuda_kernel_architectures();
std::string cuda_kernels_unavailable(int device_index);
#endif

// Whether the model uses the fused ops on `device`: FUSED_KERNELS (`requested`) on CUDA.
inline bool use_fused_kernels(bool requested, const at::Device& device) { return requested && device.is_cuda(); }

// Throws, naming the GPU and the architectures built, when this build's
// kernels cannot run on the CUDA `device`: the model calls it when it takes
// the fused ops, before any work.
inline void check_fused_kernels_run_on(const at::Device& device) {
#if defined(PGOLF_WITH_CUDA) && PGOLF_HAS_CUDA_KERNELS
  const std::string why = cuda_kernels_unavailable(device.has_index() ? device.index() : 0);
  if (!why.empty()) throw std::runtime_error("FUSED_KERNELS=1: " + why);
#else
  (void)device;
#endif
}

}  // namespace pgolf
