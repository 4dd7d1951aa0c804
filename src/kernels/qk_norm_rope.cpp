// RMSNorm + RoPE + gain of the queries and keys fused (qk_norm_rope.h): CPU
// loops over fused_math.h, the CUDA kernels of qk_norm_rope.cu on the GPU.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "fused_detail.h"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/qk_norm_rope.h"
#include "pgolf/model/layers.h"

namespace pgolf {

// RoPE(RMSNorm(x)) * gain, computed in the [B, H, T, hd] layout attention reads.
at::Tensor qk_norm_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain) {
  at::Tensor y = apply_rope(rms_norm(x.transpose(1, 2)), cos, sin);
  if (gain.defined()) y = y * gain.to(x.scalar_type()).view({1, -1, 1, 1});
  return y.transpose(1, 2);
}

namespace fm = fused_math;
using namespace fused_detail;

namespace {

// The geometry of x [B, T, H, hd]: vector `row` is position (row / H) % T, head row % H.
struct HeadRows {
  std::int64_t rows, seq, heads, hd, half;
  HeadRows(const at::Tensor& x, const at::Tensor& cos)
      : rows(x.numel() / x.size(3)), seq(x.size(1)), heads(x.size(2)), hd(x.size(3)), half(cos.size(1)) {}
  std::int64_t pos(std::int64_t row) const { return (row / heads) % seq; }
};

// Forward of one vector (see fused_math.h); `rot` receives the rotated n (without the gain).
template <class T, class A>
void qk_vector(const T* x, T* y, A* rot, const float* c, const float* s, A g, A eps, std::int64_t hd, std::int64_t half) {
  A ss = 0;
  for (std::int64_t i = 0; i < hd; ++i) ss += static_cast<A>(x[i]) * static_cast<A>(x[i]);
  const A r = fm::rms_inverse(ss, static_cast<A>(hd), eps);
  for (std::int64_t i = 0; i < half; ++i)
    fm::rope_rotate(r * static_cast<A>(x[i]), r * static_cast<A>(x[i + half]), static_cast<A>(c[i]), static_cast<A>(s[i]), rot[i],
                    rot[i + half]);
  for (std::int64_t i = 2 * half; i < hd; ++i) rot[i] = r * static_cast<A>(x[i]);
  if (y)
    for (std::int64_t i = 0; i < hd; ++i) y[i] = static_cast<T>(g * rot[i]);
}

template <class T>
void qk_forward_cpu(const at::Tensor& x, const at::Tensor& y, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain,
                    double eps) {
  using A = Acc<T>;
  const HeadRows h(x, cos);
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  const A* gp = gain.defined() ? gain.data_ptr<A>() : nullptr;
  at::parallel_for(0, h.rows, 64, [&](std::int64_t r0, std::int64_t r1) {
    std::vector<A> rot(static_cast<std::size_t>(h.hd));
    for (std::int64_t row = r0; row < r1; ++row)
      qk_vector<T, A>(xp + row * h.hd, yp + row * h.hd, rot.data(), cp + h.pos(row) * h.half, sp + h.pos(row) * h.half,
                      gp ? static_cast<A>(gp[row % h.heads]) : A(1), static_cast<A>(eps), h.hd, h.half);
  });
}

// Backward of one vector: u = g gy, gn = rotation transposed of u (pass dims:
// u), gx = rms_norm_back(gn); ggain = sum(gy * rot).
template <class T>
void qk_backward_cpu(const at::Tensor& x, const at::Tensor& gy, const at::Tensor& gx, const at::Tensor& ggain_rows,
                     const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain, double eps) {
  using A = Acc<T>;
  const HeadRows h(x, cos);
  const T *xp = x.data_ptr<T>(), *gyp = gy.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  A* ggp = ggain_rows.defined() ? ggain_rows.data_ptr<A>() : nullptr;
  const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  const A* gp = gain.defined() ? gain.data_ptr<A>() : nullptr;
  at::parallel_for(0, h.rows, 64, [&](std::int64_t r0, std::int64_t r1) {
    std::vector<A> rot(static_cast<std::size_t>(h.hd)), gn(rot.size());
    for (std::int64_t row = r0; row < r1; ++row) {
      const T *xr = xp + row * h.hd, *gyr = gyp + row * h.hd;
      const float *c = cp + h.pos(row) * h.half, *s = sp + h.pos(row) * h.half;
      const A g = gp ? static_cast<A>(gp[row % h.heads]) : A(1);
      qk_vector<T, A>(xr, nullptr, rot.data(), c, s, g, static_cast<A>(eps), h.hd, h.half);
      A ss = 0, gdot = 0;
      for (std::int64_t i = 0; i < h.hd; ++i) {
        ss += static_cast<A>(xr[i]) * static_cast<A>(xr[i]);
        gdot += static_cast<A>(gyr[i]) * rot[i];
      }
      if (ggp) ggp[row] = gdot;
      for (std::int64_t i = 0; i < h.half; ++i)
        fm::rope_rotate_back(g * static_cast<A>(gyr[i]), g * static_cast<A>(gyr[i + h.half]), static_cast<A>(c[i]),
                             static_cast<A>(s[i]), gn[i], gn[i + h.half]);
      for (std::int64_t i = 2 * h.half; i < h.hd; ++i) gn[i] = g * static_cast<A>(gyr[i]);
      const A r = fm::rms_inverse(ss, static_cast<A>(h.hd), static_cast<A>(eps));
      A dot = 0;
      for (std::int64_t i = 0; i < h.hd; ++i) dot += gn[i] * r * static_cast<A>(xr[i]);
      for (std::int64_t i = 0; i < h.hd; ++i)
        gxp[row * h.hd + i] = static_cast<T>(fm::rms_norm_back(gn[i], r * static_cast<A>(xr[i]), dot, r, static_cast<A>(h.hd)));
    }
  });
}

struct QkNormRope : torch::autograd::Function<QkNormRope> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& cos_in, const at::Tensor& sin_in,
                            const at::Tensor& gain_in) {
    const at::Tensor x = x_in.contiguous(), cos = cos_in.to(at::kFloat).contiguous(), sin = sin_in.to(at::kFloat).contiguous();
    const at::Tensor gain = gain_in.defined() ? gain_in.to(acc_dtype(x)).contiguous() : at::Tensor();
    const double eps = rms_norm_eps(x.scalar_type());
    at::Tensor y = at::empty_like(x);
#if PGOLF_CUDA_KERNELS
    if (x.is_cuda()) {
      const HeadRows h(x, cos);
      cuda::qk_norm_rope_forward(x.data_ptr(), y.data_ptr(), is_bf16(x), cos.data_ptr<float>(), sin.data_ptr<float>(),
                                 gain.defined() ? gain.data_ptr<float>() : nullptr, h.rows, h.seq, h.heads, h.hd, h.half,
                                 static_cast<float>(eps), stream_of(x));
    } else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "qk_norm_rope",
                                     [&] { qk_forward_cpu<scalar_t>(x, y, cos, sin, gain, eps); });
    ctx->save_for_backward({x, cos, sin, gain});
    ctx->saved_data["gain_dtype"] = static_cast<std::int64_t>(gain_in.defined() ? gain_in.scalar_type() : at::kFloat);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &cos = saved[1], &sin = saved[2], &gain = saved[3];
    const double eps = rms_norm_eps(x.scalar_type());
    const at::Tensor gy = grads[0].to(x.scalar_type()).contiguous();
    at::Tensor gx = at::empty_like(x);
    const HeadRows h(x, cos);
    at::Tensor ggain_rows = gain.defined() ? at::empty({h.rows}, x.options().dtype(acc_dtype(x))) : at::Tensor();
#if PGOLF_CUDA_KERNELS
    if (x.is_cuda())
      cuda::qk_norm_rope_backward(x.data_ptr(), gy.data_ptr(), gx.data_ptr(),
                                  ggain_rows.defined() ? ggain_rows.data_ptr<float>() : nullptr, is_bf16(x), cos.data_ptr<float>(),
                                  sin.data_ptr<float>(), gain.defined() ? gain.data_ptr<float>() : nullptr, h.rows, h.seq,
                                  h.heads, h.hd, h.half, static_cast<float>(eps), stream_of(x));
    else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "qk_norm_rope_backward",
                                     [&] { qk_backward_cpu<scalar_t>(x, gy, gx, ggain_rows, cos, sin, gain, eps); });
    const auto gain_dtype = static_cast<at::ScalarType>(ctx->saved_data["gain_dtype"].toInt());
    at::Tensor ggain = gain.defined() ? ggain_rows.view({-1, h.heads}).sum(0).to(gain_dtype) : at::Tensor();
    return {gx, at::Tensor(), at::Tensor(), ggain};
  }
};

}  // namespace

at::Tensor fused_qk_norm_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain) {
  // (autograd functions take no undefined inputs: the keys get a gain of ones)
  return QkNormRope::apply(x, cos, sin, gain.defined() ? gain : at::ones({x.size(2)}, x.options().dtype(acc_dtype(x))));
}


}  // namespace pgolf
