#include "pgolf/kernels/fused.h"

namespace pgolf {

bool use_fused_kernels(const Config& cfg, const at::Device& device) { return cfg.fused_kernels && device.is_cuda(); }

}  // namespace pgolf
