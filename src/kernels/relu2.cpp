// relu(x)^2 and leaky_relu(x, slope)^2 fused (relu2.h): CPU loops over
// fused_math.h, the CUDA kernels of relu2.cu on the GPU.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "fused_detail.h"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/relu2.h"

namespace pgolf {

at::Tensor relu_squared(const at::Tensor& x) { return at::relu(x).square(); }

at::Tensor leaky_relu_squared(const at::Tensor& x, double slope) { return at::leaky_relu(x, slope).square(); }

namespace fm = fused_math;
using namespace fused_detail;

namespace {

template <class T>
void leaky_relu2_cpu(const at::Tensor& x, const at::Tensor& y, double slope) {
  using A = Acc<T>;
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  at::parallel_for(0, x.numel(), 4096, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) yp[i] = static_cast<T>(fm::leaky_relu2(static_cast<A>(xp[i]), static_cast<A>(slope)));
  });
}

template <class T>
void leaky_relu2_backward_cpu(const at::Tensor& x, const at::Tensor& gy, const at::Tensor& gx, double slope) {
  using A = Acc<T>;
  const T *xp = x.data_ptr<T>(), *gp = gy.data_ptr<T>();
  T* op = gx.data_ptr<T>();
  at::parallel_for(0, x.numel(), 4096, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i)
      op[i] = static_cast<T>(static_cast<A>(gp[i]) * fm::leaky_relu2_grad(static_cast<A>(xp[i]), static_cast<A>(slope)));
  });
}

struct LeakyRelu2 : torch::autograd::Function<LeakyRelu2> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, double slope) {
    const at::Tensor x = x_in.contiguous();
    at::Tensor y = at::empty_like(x);
#if PGOLF_CUDA_KERNELS
    if (x.is_cuda())
      cuda::leaky_relu2_forward(x.data_ptr(), y.data_ptr(), is_bf16(x), x.numel(), static_cast<float>(slope), stream_of(x));
    else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "leaky_relu2", [&] { leaky_relu2_cpu<scalar_t>(x, y, slope); });
    ctx->save_for_backward({x});
    ctx->saved_data["slope"] = slope;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const double slope = ctx->saved_data["slope"].toDouble();
    const at::Tensor gy = grads[0].to(x.scalar_type()).contiguous();
    at::Tensor gx = at::empty_like(x);
#if PGOLF_CUDA_KERNELS
    if (x.is_cuda())
      cuda::leaky_relu2_backward(x.data_ptr(), gy.data_ptr(), gx.data_ptr(), is_bf16(x), x.numel(), static_cast<float>(slope),
                                 stream_of(x));
    else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "leaky_relu2_backward",
                                     [&] { leaky_relu2_backward_cpu<scalar_t>(x, gy, gx, slope); });
    return {gx, at::Tensor()};
  }
};

}  // namespace

at::Tensor fused_leaky_relu2(const at::Tensor& x, double slope) { return LeakyRelu2::apply(x, slope); }


}  // namespace pgolf
