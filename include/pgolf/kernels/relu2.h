// The MLP's activation, relu(x)^2 or leaky_relu(x, slope)^2: the references the
// model's unfused MLP computes, the fused op (FUSED_KERNELS) that replaces
// them and its CUDA launchers (src/kernels/relu2.{cpp,cu}).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace pgolf {

// Reference: relu(x)^2.
at::Tensor relu_squared(const at::Tensor& x);
// Reference: leaky_relu(x, slope)^2: x^2 for x > 0, slope^2 x^2 otherwise (the
// 1.0611 record's MLP, slope 0.5); its derivative is 2x, or 2 slope^2 x.
at::Tensor leaky_relu_squared(const at::Tensor& x, double slope);

// Fused: leaky_relu_squared(x, slope) (slope 0: relu_squared(x)), one pass
// forward, one pass backward (grad_x = grad_y * 2 a(x) a'(x)).
at::Tensor fused_leaky_relu2(const at::Tensor& x, double slope);

namespace cuda {
// y = leaky_relu2(x, slope); gx = gy * leaky_relu2_grad(x, slope) (grid-stride loops).
void leaky_relu2_forward(const void* x, void* y, bool bf16, std::int64_t n, float slope, void* stream);
void leaky_relu2_backward(const void* x, const void* gy, void* gx, bool bf16, std::int64_t n, float slope, void* stream);
}  // namespace cuda

}  // namespace pgolf
