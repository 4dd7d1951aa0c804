// XSA fused (xsa.h): CPU loops over fused_math.h, the CUDA kernels of
// xsa.cu on the GPU.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "fused_detail.h"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/xsa.h"

namespace pgolf {

// y [B, T, Hkv, H/Hkv, D] less (y . v^) v^, v^ = v / |v| (clamped at 1e-12).
at::Tensor xsa(const at::Tensor& y, const at::Tensor& v) {
  const std::int64_t B = y.size(0), T = y.size(1), H = y.size(2), D = y.size(3), Hkv = v.size(2);
  at::Tensor yg = y.reshape({B, T, Hkv, H / Hkv, D});
  at::Tensor vn = (v / v.norm(2, -1, true).clamp_min(1e-12)).unsqueeze(-2);  // [B, T, Hkv, 1, D]
  at::Tensor proj = (yg * vn).sum(-1, true) * vn;
  return (yg - proj).reshape({B, T, H, D});
}

namespace fm = fused_math;
using namespace fused_detail;

namespace {

template <class T>
struct XsaRows {
  using A = Acc<T>;
  const T *y, *v;
  std::int64_t group, hd;
  A norm(std::int64_t row) const {
    A ss = 0;
    for (std::int64_t i = 0; i < hd; ++i) ss += static_cast<A>(v[row * hd + i]) * static_cast<A>(v[row * hd + i]);
    return fm::clamped_norm(ss);
  }
  A unit(std::int64_t row, std::int64_t i, A norm) const { return static_cast<A>(v[row * hd + i]) / norm; }
  // t . u for head h's vector of `t` (y, or its gradient) in group row `row`.
  A dot_unit(const T* t, std::int64_t row, std::int64_t h, A norm) const {
    A a = 0;
    for (std::int64_t i = 0; i < hd; ++i) a += static_cast<A>(t[(row * group + h) * hd + i]) * unit(row, i, norm);
    return a;
  }
};

template <class T>
void xsa_cpu(const XsaRows<T>& xr, std::int64_t groups, T* out) {
  using A = Acc<T>;
  at::parallel_for(0, groups, 16, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t row = r0; row < r1; ++row) {
      const A norm = xr.norm(row);
      for (std::int64_t h = 0; h < xr.group; ++h) {
        const A a = xr.dot_unit(xr.y, row, h, norm);
        const std::int64_t yb = (row * xr.group + h) * xr.hd;
        for (std::int64_t i = 0; i < xr.hd; ++i)
          out[yb + i] = static_cast<T>(fm::xsa_remove(static_cast<A>(xr.y[yb + i]), a, xr.unit(row, i, norm)));
      }
    }
  });
}

template <class T>
void xsa_backward_cpu(const XsaRows<T>& xr, std::int64_t groups, const T* g, T* gy, T* gv) {
  using A = Acc<T>;
  at::parallel_for(0, groups, 16, [&](std::int64_t r0, std::int64_t r1) {
    std::vector<A> a(static_cast<std::size_t>(xr.group)), b(a.size());
    for (std::int64_t row = r0; row < r1; ++row) {
      const A norm = xr.norm(row);
      A c = 0;
      for (std::int64_t h = 0; h < xr.group; ++h) {
        const auto k = static_cast<std::size_t>(h);
        a[k] = xr.dot_unit(xr.y, row, h, norm);
        b[k] = xr.dot_unit(g, row, h, norm);
        c -= 2 * a[k] * b[k];
        const std::int64_t yb = (row * xr.group + h) * xr.hd;
        for (std::int64_t i = 0; i < xr.hd; ++i)
          gy[yb + i] = static_cast<T>(fm::xsa_remove(static_cast<A>(g[yb + i]), b[k], xr.unit(row, i, norm)));
      }
      for (std::int64_t i = 0; i < xr.hd; ++i) {
        A gu = 0;
        for (std::int64_t h = 0; h < xr.group; ++h) {
          const std::int64_t e = (row * xr.group + h) * xr.hd + i;
          gu -= b[static_cast<std::size_t>(h)] * static_cast<A>(xr.y[e]) + a[static_cast<std::size_t>(h)] * static_cast<A>(g[e]);
        }
        gv[row * xr.hd + i] = static_cast<T>(fm::xsa_value_grad(gu, c, xr.unit(row, i, norm), norm, norm <= A(1e-12)));
      }
    }
  });
}

struct Xsa : torch::autograd::Function<Xsa> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y_in, const at::Tensor& v_in) {
    TORCH_CHECK(y_in.dim() == 4 && v_in.dim() == 4 && y_in.size(2) % v_in.size(2) == 0 && y_in.scalar_type() == v_in.scalar_type(),
                "fused_xsa: y [B, T, H, hd] and v [B, T, Hkv, hd] of one dtype, H a multiple of Hkv");
    const at::Tensor y = y_in.contiguous(), v = v_in.contiguous();
    const std::int64_t hd = y.size(3), group = y.size(2) / v.size(2), groups = v.numel() / hd;
    at::Tensor out = at::empty_like(y);
#if PGOLF_CUDA_KERNELS
    if (y.is_cuda())
      cuda::xsa_forward(y.data_ptr(), v.data_ptr(), out.data_ptr(), is_bf16(y), groups, group, hd, stream_of(y));
    else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, y.scalar_type(), "xsa", [&] {
        xsa_cpu<scalar_t>({y.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), group, hd}, groups, out.data_ptr<scalar_t>());
      });
    ctx->save_for_backward({y, v});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &y = saved[0], &v = saved[1];
    const at::Tensor g = grads[0].to(y.scalar_type()).contiguous();
    const std::int64_t hd = y.size(3), group = y.size(2) / v.size(2), groups = v.numel() / hd;
    at::Tensor gy = at::empty_like(y), gv = at::empty_like(v);
#if PGOLF_CUDA_KERNELS
    if (y.is_cuda())
      cuda::xsa_backward(y.data_ptr(), v.data_ptr(), g.data_ptr(), gy.data_ptr(), gv.data_ptr(), is_bf16(y), groups, group, hd,
                         stream_of(y));
    else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, y.scalar_type(), "xsa_backward", [&] {
        xsa_backward_cpu<scalar_t>({y.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), group, hd}, groups, g.data_ptr<scalar_t>(),
                                   gy.data_ptr<scalar_t>(), gv.data_ptr<scalar_t>());
      });
    return {gy, gv};
  }
};


}  // namespace

at::Tensor fused_xsa(const at::Tensor& y, const at::Tensor& v) { return Xsa::apply(y, v); }


}  // namespace pgolf
