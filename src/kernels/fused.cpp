#include "pgolf/kernels/fused.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <limits>
#include <vector>

#include "pgolf/kernels/fused_math.h"

#include "fused_detail.h"

#ifdef PGOLF_WITH_CUDA
#include "pgolf/kernels/fused_cuda.h"
#endif

namespace pgolf {

namespace fm = fused_math;
using fused_detail::acc_dtype;
using fused_detail::Acc;
#ifdef PGOLF_WITH_CUDA
using fused_detail::is_bf16;
using fused_detail::stream_of;
#endif

namespace {

template <class T>
void ce_rows_cpu(const at::Tensor& z, const at::Tensor& targets, double cap, const at::Tensor& loss, const at::Tensor& lse) {
  using A = Acc<T>;
  const std::int64_t V = z.size(1);
  const T* zp = z.data_ptr<T>();
  const std::int64_t* y = targets.data_ptr<std::int64_t>();
  A* lp = loss.data_ptr<A>();
  A* sp = lse.data_ptr<A>();
  at::parallel_for(0, z.size(0), 16, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* row = zp + r * V;
      fm::LogSumExp<A> s;
      for (std::int64_t j = 0; j < V; ++j) fm::lse_add(s, fm::softcap(static_cast<A>(row[j]), static_cast<A>(cap)));
      sp[r] = fm::lse_value(s);
      lp[r] = sp[r] - fm::softcap(static_cast<A>(row[y[r]]), static_cast<A>(cap));
    }
  });
}

template <class T>
void ce_rows_backward_cpu(const at::Tensor& z, const at::Tensor& targets, const at::Tensor& lse, const at::Tensor& g, double cap) {
  using A = Acc<T>;
  const std::int64_t V = z.size(1);
  T* zp = z.data_ptr<T>();
  const std::int64_t* y = targets.data_ptr<std::int64_t>();
  const A* sp = lse.data_ptr<A>();
  const A* gp = g.data_ptr<A>();
  at::parallel_for(0, z.size(0), 16, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t j = 0; j < V; ++j) {
        T& v = zp[r * V + j];
        v = static_cast<T>(fm::softcap_ce_grad(static_cast<A>(v), static_cast<A>(cap), sp[r], j == y[r], gp[r]));
      }
  });
}

}  // namespace

void softcap_ce_rows(const at::Tensor& z, const at::Tensor& targets, double cap, const at::Tensor& loss, const at::Tensor& lse) {
  TORCH_CHECK(z.is_contiguous() && targets.is_contiguous() && z.dim() == 2, "softcap_ce_rows: contiguous [n, V] logits");
#ifdef PGOLF_WITH_CUDA
  if (z.is_cuda()) {
    cuda::softcap_ce_forward(z.data_ptr(), is_bf16(z), targets.data_ptr<std::int64_t>(), z.size(0), z.size(1),
                             static_cast<float>(cap), loss.data_ptr<float>(), lse.data_ptr<float>(), stream_of(z));
    return;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, z.scalar_type(), "softcap_ce_rows",
                                 [&] { ce_rows_cpu<scalar_t>(z, targets, cap, loss, lse); });
}

void softcap_ce_rows_backward(const at::Tensor& z, const at::Tensor& targets, const at::Tensor& lse, const at::Tensor& g,
                              double cap) {
  TORCH_CHECK(z.is_contiguous() && g.is_contiguous() && z.dim() == 2, "softcap_ce_rows_backward: contiguous [n, V] logits");
#ifdef PGOLF_WITH_CUDA
  if (z.is_cuda()) {
    cuda::softcap_ce_backward(z.data_ptr(), is_bf16(z), targets.data_ptr<std::int64_t>(), lse.data_ptr<float>(),
                              g.data_ptr<float>(), z.size(0), z.size(1), static_cast<float>(cap), stream_of(z));
    return;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, z.scalar_type(), "softcap_ce_rows_backward",
                                 [&] { ce_rows_backward_cpu<scalar_t>(z, targets, lse, g, cap); });
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct SoftcapCrossEntropy : torch::autograd::Function<SoftcapCrossEntropy> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h, const at::Tensor& w, const at::Tensor& targets, double cap,
                            std::int64_t chunk) {
    const at::Tensor hc = h.contiguous(), t = targets.contiguous();
    const std::int64_t N = hc.size(0);
    const auto opts = h.options().dtype(acc_dtype(h));
    at::Tensor loss = at::empty({N}, opts), lse = at::empty({N}, opts);
    for (std::int64_t r = 0; r < N; r += chunk) {
      const std::int64_t n = std::min(chunk, N - r);
      const at::Tensor z = at::matmul(hc.narrow(0, r, n), w.t()).contiguous();
      softcap_ce_rows(z, t.narrow(0, r, n), cap, loss.narrow(0, r, n), lse.narrow(0, r, n));
    }
    ctx->save_for_backward({hc, w, t, lse});
    ctx->saved_data["cap"] = cap;
    ctx->saved_data["chunk"] = chunk;
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &h = saved[0], &w = saved[1], &t = saved[2], &lse = saved[3];
    const double cap = ctx->saved_data["cap"].toDouble();
    const std::int64_t chunk = ctx->saved_data["chunk"].toInt(), N = h.size(0);
    const at::Tensor g = grads[0].to(lse.scalar_type()).contiguous();
    at::Tensor gh = at::empty_like(h), gw = at::zeros(w.sizes(), w.options().dtype(acc_dtype(w)));
    for (std::int64_t r = 0; r < N; r += chunk) {
      const std::int64_t n = std::min(chunk, N - r);
      const at::Tensor hr = h.narrow(0, r, n);
      const at::Tensor z = at::matmul(hr, w.t()).contiguous();
      softcap_ce_rows_backward(z, t.narrow(0, r, n), lse.narrow(0, r, n), g.narrow(0, r, n), cap);
      gh.narrow(0, r, n).copy_(at::matmul(z, w));
      gw.add_(at::matmul(z.t(), hr).to(gw.scalar_type()));
    }
    return {gh, gw.to(w.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

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
#ifdef PGOLF_WITH_CUDA
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
#ifdef PGOLF_WITH_CUDA
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
#ifdef PGOLF_WITH_CUDA
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
#ifdef PGOLF_WITH_CUDA
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

double rms_norm_eps(at::ScalarType dtype) {
  return dtype == at::kDouble ? std::numeric_limits<double>::epsilon() : std::numeric_limits<float>::epsilon();
}

at::Tensor fused_qk_norm_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain) {
  // (autograd functions take no undefined inputs: the keys get a gain of ones)
  return QkNormRope::apply(x, cos, sin, gain.defined() ? gain : at::ones({x.size(2)}, x.options().dtype(acc_dtype(x))));
}

at::Tensor fused_softcap_cross_entropy(const at::Tensor& h, const at::Tensor& w, const at::Tensor& targets, double cap,
                                       std::int64_t chunk_rows) {
  return SoftcapCrossEntropy::apply(h, w, targets, cap, chunk_rows);
}

at::Tensor fused_leaky_relu2(const at::Tensor& x, double slope) { return LeakyRelu2::apply(x, slope); }

bool use_fused_kernels(const Config& cfg, const at::Device& device) { return cfg.fused_kernels && device.is_cuda(); }

}  // namespace pgolf
