// The fused ops (FUSED_KERNELS=1), one op per header beside this one, each
// holding its ATen reference (what the model's unfused path and the tests
// run), the fused entry point with its backward, and its CUDA launchers. The
// arithmetic is fused_math.h's; on CUDA the kernels of src/kernels/<op>.cu run
// it, elsewhere CPU loops over the same functions (what the CPU tests check,
// in float32, float64 and bf16).
#pragma once
#include <ATen/ATen.h>

#include "pgolf/kernels/qk_norm_rope.h"
#include "pgolf/kernels/relu2.h"
#include "pgolf/kernels/residual_norm.h"
#include "pgolf/kernels/smear_norm.h"
#include "pgolf/kernels/softcap_ce.h"
#include "pgolf/kernels/xsa.h"

namespace pgolf {

// Whether the model uses the fused ops on `device`: FUSED_KERNELS (`requested`) on CUDA.
inline bool use_fused_kernels(bool requested, const at::Device& device) { return requested && device.is_cuda(); }

}  // namespace pgolf
