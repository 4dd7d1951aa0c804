// The residual arithmetic with its RMSNorm fused (residual_norm.h): CPU
// loops over fused_math.h, the CUDA kernels of residual_norm.cu on the GPU.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "fused_detail.h"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/residual_norm.h"
#include "pgolf/model/layers.h"

namespace pgolf {

std::pair<at::Tensor, at::Tensor> residual_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& p,
                                                const at::Tensor& q, double s) {
  const auto dt = x.scalar_type();
  at::Tensor out = p.defined() ? p.to(dt) * x + q.to(dt) * y : x + q.to(dt) * y;
  return {out, s == 1.0 ? rms_norm(out) : rms_norm(out) * s};
}

namespace fm = fused_math;
using namespace fused_detail;

namespace {

template <class T>
struct ResidualRows {
  using A = Acc<T>;
  const T *x, *y;
  const A *p, *q;
  std::int64_t dim;
  A mixed(std::int64_t row, std::int64_t i) const {
    return fm::residual_mix(static_cast<A>(x[row * dim + i]), static_cast<A>(y[row * dim + i]), p[i], q[i]);
  }
  A rms_inverse(std::int64_t row, A eps) const {
    A ss = 0;
    for (std::int64_t i = 0; i < dim; ++i) ss += mixed(row, i) * mixed(row, i);
    return fm::rms_inverse(ss, static_cast<A>(dim), eps);
  }
};

template <class T>
ResidualRows<T> residual_rows(const at::Tensor& x, const at::Tensor& y, const at::Tensor& p, const at::Tensor& q) {
  using A = Acc<T>;
  return {x.data_ptr<T>(), y.data_ptr<T>(), p.data_ptr<A>(), q.data_ptr<A>(), x.size(-1)};
}

template <class T>
void residual_norm_cpu(const ResidualRows<T>& rr, double s, double eps, std::int64_t rows, T* out, T* n) {
  using A = Acc<T>;
  at::parallel_for(0, rows, 16, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t row = r0; row < r1; ++row) {
      const A r = rr.rms_inverse(row, static_cast<A>(eps));
      for (std::int64_t i = 0; i < rr.dim; ++i) {
        out[row * rr.dim + i] = static_cast<T>(rr.mixed(row, i));
        n[row * rr.dim + i] = static_cast<T>(static_cast<A>(s) * r * rr.mixed(row, i));
      }
    }
  });
}

// gt = gout + rms_norm_back(s gn); gx = p gt, gy = q gt; partial[c] = (sum x gt, sum y gt) over chunk c.
template <class T>
void residual_norm_backward_cpu(const ResidualRows<T>& rr, double s, double eps, std::int64_t rows, const T* gout, const T* gn,
                                T* gx, T* gy, Acc<T>* partial) {
  using A = Acc<T>;
  const std::int64_t D = rr.dim;
  const A count = static_cast<A>(D), sa = static_cast<A>(s);
  for_row_chunks(rows, [&](std::int64_t c, std::int64_t row0, std::int64_t row1) {
    A* acc = partial + c * 2 * D;
    std::fill(acc, acc + 2 * D, A(0));
    for (std::int64_t row = row0; row < row1; ++row) {
      const std::int64_t b = row * D;
      const A r = rr.rms_inverse(row, static_cast<A>(eps));
      A dot = 0;
      for (std::int64_t i = 0; i < D; ++i) dot += sa * static_cast<A>(gn[b + i]) * r * rr.mixed(row, i);
      for (std::int64_t i = 0; i < D; ++i) {
        const A gt = static_cast<A>(gout[b + i]) + fm::rms_norm_back(sa * static_cast<A>(gn[b + i]), r * rr.mixed(row, i), dot, r, count);
        gx[b + i] = static_cast<T>(rr.p[i] * gt);
        gy[b + i] = static_cast<T>(rr.q[i] * gt);
        acc[i] += static_cast<A>(rr.x[b + i]) * gt;
        acc[D + i] += static_cast<A>(rr.y[b + i]) * gt;
      }
    }
  });
}

struct ResidualNorm : torch::autograd::Function<ResidualNorm> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& y_in, const at::Tensor& p_in,
                               const at::Tensor& q_in, double s) {
    TORCH_CHECK(x_in.sizes() == y_in.sizes() && x_in.scalar_type() == y_in.scalar_type(),
                "fused_residual_norm: x and y must have the same shape and dtype");
    const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
    const at::Tensor p = p_in.to(acc_dtype(x)).contiguous(), q = q_in.to(acc_dtype(x)).contiguous();
    const std::int64_t D = x.size(-1), rows = x.numel() / D;
    const double eps = rms_norm_eps(x.scalar_type());
    at::Tensor out = at::empty_like(x), n = at::empty_like(x);
#if PGOLF_CUDA_KERNELS
    if (x.is_cuda())
      cuda::residual_norm_forward(x.data_ptr(), y.data_ptr(), p.data_ptr<float>(), q.data_ptr<float>(), out.data_ptr(),
                                  n.data_ptr(), is_bf16(x), rows, D, static_cast<float>(s), static_cast<float>(eps),
                                  stream_of(x));
    else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "residual_norm", [&] {
        residual_norm_cpu<scalar_t>(residual_rows<scalar_t>(x, y, p, q), s, eps, rows, out.data_ptr<scalar_t>(),
                                    n.data_ptr<scalar_t>());
      });
    ctx->save_for_backward({x, y, p, q});
    ctx->saved_data["s"] = s;
    ctx->saved_data["p_dtype"] = static_cast<std::int64_t>(p_in.scalar_type());
    ctx->saved_data["q_dtype"] = static_cast<std::int64_t>(q_in.scalar_type());
    return {out, n};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &y = saved[1], &p = saved[2], &q = saved[3];
    const double s = ctx->saved_data["s"].toDouble(), eps = rms_norm_eps(x.scalar_type());
    const at::Tensor gout = grads[0].to(x.scalar_type()).contiguous(), gn = grads[1].to(x.scalar_type()).contiguous();
    const std::int64_t D = x.size(-1), rows = x.numel() / D;
    at::Tensor gx = at::empty_like(x), gy = at::empty_like(x), partial = channel_partials(x, rows, 2 * D);
#if PGOLF_CUDA_KERNELS
    if (x.is_cuda())
      cuda::residual_norm_backward(x.data_ptr(), y.data_ptr(), p.data_ptr<float>(), q.data_ptr<float>(), gout.data_ptr(),
                                   gn.data_ptr(), gx.data_ptr(), gy.data_ptr(), partial.data_ptr<float>(), is_bf16(x), rows, D,
                                   static_cast<float>(s), static_cast<float>(eps), stream_of(x));
    else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "residual_norm_backward", [&] {
        residual_norm_backward_cpu<scalar_t>(residual_rows<scalar_t>(x, y, p, q), s, eps, rows, gout.data_ptr<scalar_t>(),
                                             gn.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), gy.data_ptr<scalar_t>(),
                                             partial.data_ptr<Acc<scalar_t>>());
      });
    const at::Tensor sums = partial.sum(0);
    const auto p_dtype = static_cast<at::ScalarType>(ctx->saved_data["p_dtype"].toInt());
    const auto q_dtype = static_cast<at::ScalarType>(ctx->saved_data["q_dtype"].toInt());
    return {gx, gy, sums.narrow(0, 0, D).to(p_dtype), sums.narrow(0, D, D).to(q_dtype), at::Tensor()};
  }
};


}  // namespace

std::pair<at::Tensor, at::Tensor> fused_residual_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& p,
                                                      const at::Tensor& q, double s) {
  // (autograd functions take no undefined inputs: a missing p is ones)
  const at::Tensor pp = p.defined() ? p : at::ones({x.size(-1)}, x.options().dtype(acc_dtype(x)));
  const variable_list outs = ResidualNorm::apply(x, y, pp, q, s);
  return {outs[0], outs[1]};
}


}  // namespace pgolf
