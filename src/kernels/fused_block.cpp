// The fused row ops of a block (fused.h): the residual arithmetic with its
// RMSNorm, the embedding's SmearGate with its RMSNorm, and XSA. CPU loops over
// fused_math.h, the same arithmetic src/kernels/fused_block_kernels.cu runs on CUDA.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "fused_detail.h"
#include "pgolf/kernels/fused.h"
#include "pgolf/kernels/fused_math.h"

#ifdef PGOLF_WITH_CUDA
#include "pgolf/kernels/fused_cuda.h"
#endif

namespace pgolf {

namespace {

namespace fm = fused_math;
using fused_detail::acc_dtype;
using fused_detail::Acc;
using fused_detail::cpu_partial_count;
using fused_detail::kCpuPartialRows;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
#ifdef PGOLF_WITH_CUDA
using fused_detail::is_bf16;
using fused_detail::stream_of;
#endif

// Runs body(c, row0, row1) for each chunk c of kCpuPartialRows rows, chunks in parallel.
template <class Body>
void for_row_chunks(std::int64_t rows, const Body& body) {
  at::parallel_for(0, cpu_partial_count(rows), 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c) body(c, c * kCpuPartialRows, std::min(rows, (c + 1) * kCpuPartialRows));
  });
}

// The per-channel partials [chunks or blocks, width] for `rows` rows of x's op.
at::Tensor channel_partials(const at::Tensor& x, std::int64_t rows, std::int64_t width) {
#ifdef PGOLF_WITH_CUDA
  if (x.is_cuda()) return at::empty({cuda::column_partial_blocks(rows), width}, x.options().dtype(at::kFloat));
#endif
  return at::empty({cpu_partial_count(rows), width}, x.options().dtype(acc_dtype(x)));
}

// ---- Residual mix + RMSNorm: out = p x + q y, n = s rms_norm(out) ----

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
#ifdef PGOLF_WITH_CUDA
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
#ifdef PGOLF_WITH_CUDA
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

// ---- SmearGate + RMSNorm over positions row = b * seq + t ----

template <class T>
struct SmearRows {
  using A = Acc<T>;
  const T* x;
  const A* g;
  std::int64_t seq, dim;
  A at(std::int64_t row, std::int64_t i) const { return static_cast<A>(x[row * dim + i]); }
  bool has_prev(std::int64_t row) const { return row % seq != 0; }
  bool has_next(std::int64_t row) const { return (row + 1) % seq != 0; }
  A prev(std::int64_t row, std::int64_t i) const { return has_prev(row) ? at(row - 1, i) : A(0); }
  A smeared(std::int64_t row, std::int64_t i) const { return fm::smear(at(row, i), prev(row, i), g[i]); }
  A rms_of_x(std::int64_t row, A eps) const {
    A ss = 0;
    for (std::int64_t i = 0; i < dim; ++i) ss += at(row, i) * at(row, i);
    return fm::rms_inverse(ss, static_cast<A>(dim), eps);
  }
  A rms_of_smeared(std::int64_t row, A eps) const {
    A ss = 0;
    for (std::int64_t i = 0; i < dim; ++i) ss += smeared(row, i) * smeared(row, i);
    return fm::rms_inverse(ss, static_cast<A>(dim), eps);
  }
};

template <class T>
void smear_norm_cpu(const SmearRows<T>& sr, std::int64_t rows, bool smear_first, double eps_d, T* out) {
  using A = Acc<T>;
  const A eps = static_cast<A>(eps_d);
  at::parallel_for(0, rows, 16, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t row = r0; row < r1; ++row) {
      T* o = out + row * sr.dim;
      if (smear_first) {
        const A r = sr.rms_of_smeared(row, eps);
        for (std::int64_t i = 0; i < sr.dim; ++i) o[i] = static_cast<T>(r * sr.smeared(row, i));
      } else {
        const A rc = sr.rms_of_x(row, eps), rp = sr.has_prev(row) ? sr.rms_of_x(row - 1, eps) : A(0);
        for (std::int64_t i = 0; i < sr.dim; ++i) o[i] = static_cast<T>(fm::smear(rc * sr.at(row, i), rp * sr.prev(row, i), sr.g[i]));
      }
    }
  });
}

// smear_first: gs_t = rms_norm_back(gout_t), gx_t = smear(gs_t, gs_{t+1}, g),
// the gate sums smear_gate_grad(x_t, x_{t-1}) gs_t. Else: gn_t = smear(gout_t,
// gout_{t+1}, g), gx_t = rms_norm_back(gn_t), the gate sums smear_gate_grad(n_t, n_{t-1}) gout_t.
template <class T>
void smear_norm_backward_cpu(const SmearRows<T>& sr, std::int64_t rows, bool smear_first, double eps_d, const T* gout, T* gx,
                             Acc<T>* partial) {
  using A = Acc<T>;
  const A eps = static_cast<A>(eps_d), count = static_cast<A>(sr.dim);
  const std::int64_t D = sr.dim;
  auto go = [&](std::int64_t row, std::int64_t i) { return static_cast<A>(gout[row * D + i]); };
  // The RMSNorm backward of smeared row `row`: gs[i] for every i.
  auto smeared_back = [&](std::int64_t row, std::vector<A>& gs) {
    const A r = sr.rms_of_smeared(row, eps);
    A dot = 0;
    for (std::int64_t i = 0; i < D; ++i) dot += go(row, i) * r * sr.smeared(row, i);
    for (std::int64_t i = 0; i < D; ++i) gs[static_cast<std::size_t>(i)] = fm::rms_norm_back(go(row, i), r * sr.smeared(row, i), dot, r, count);
  };
  for_row_chunks(rows, [&](std::int64_t c, std::int64_t row0, std::int64_t row1) {
    A* acc = partial + c * D;
    std::fill(acc, acc + D, A(0));
    std::vector<A> cur(static_cast<std::size_t>(D)), next(cur.size());
    for (std::int64_t row = row0; row < row1; ++row) {
      if (smear_first) {
        smeared_back(row, cur);
        if (sr.has_next(row))
          smeared_back(row + 1, next);
        else
          std::fill(next.begin(), next.end(), A(0));
        for (std::int64_t i = 0; i < D; ++i) {
          const auto k = static_cast<std::size_t>(i);
          gx[row * D + i] = static_cast<T>(fm::smear(cur[k], next[k], sr.g[i]));
          acc[i] += fm::smear_gate_grad(sr.at(row, i), sr.prev(row, i), sr.g[i]) * cur[k];
        }
      } else {
        const A rc = sr.rms_of_x(row, eps), rp = sr.has_prev(row) ? sr.rms_of_x(row - 1, eps) : A(0);
        A dot = 0;
        for (std::int64_t i = 0; i < D; ++i) {
          cur[static_cast<std::size_t>(i)] = fm::smear(go(row, i), sr.has_next(row) ? go(row + 1, i) : A(0), sr.g[i]);
          dot += cur[static_cast<std::size_t>(i)] * rc * sr.at(row, i);
        }
        for (std::int64_t i = 0; i < D; ++i) {
          const A n = rc * sr.at(row, i);
          gx[row * D + i] = static_cast<T>(fm::rms_norm_back(cur[static_cast<std::size_t>(i)], n, dot, rc, count));
          acc[i] += fm::smear_gate_grad(n, rp * sr.prev(row, i), sr.g[i]) * go(row, i);
        }
      }
    }
  });
}

struct SmearNorm : torch::autograd::Function<SmearNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& gate, bool smear_first) {
    TORCH_CHECK(x_in.dim() == 3, "fused_smear_norm: x must be [B, T, D]");
    const at::Tensor x = x_in.contiguous(), g = at::sigmoid(gate.to(acc_dtype(x))).contiguous();
    const std::int64_t D = x.size(2), seq = x.size(1), rows = x.numel() / D;
    const double eps = rms_norm_eps(x.scalar_type());
    at::Tensor out = at::empty_like(x);
#ifdef PGOLF_WITH_CUDA
    if (x.is_cuda())
      cuda::smear_norm_forward(x.data_ptr(), g.data_ptr<float>(), out.data_ptr(), is_bf16(x), rows, seq, D, smear_first,
                               static_cast<float>(eps), stream_of(x));
    else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "smear_norm", [&] {
        smear_norm_cpu<scalar_t>({x.data_ptr<scalar_t>(), g.data_ptr<Acc<scalar_t>>(), seq, D}, rows, smear_first, eps,
                                 out.data_ptr<scalar_t>());
      });
    ctx->save_for_backward({x, g});
    ctx->saved_data["smear_first"] = smear_first;
    ctx->saved_data["gate_dtype"] = static_cast<std::int64_t>(gate.scalar_type());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &g = saved[1];
    const bool smear_first = ctx->saved_data["smear_first"].toBool();
    const double eps = rms_norm_eps(x.scalar_type());
    const at::Tensor gout = grads[0].to(x.scalar_type()).contiguous();
    const std::int64_t D = x.size(2), seq = x.size(1), rows = x.numel() / D;
    at::Tensor gx = at::empty_like(x), partial = channel_partials(x, rows, D);
#ifdef PGOLF_WITH_CUDA
    if (x.is_cuda())
      cuda::smear_norm_backward(x.data_ptr(), g.data_ptr<float>(), gout.data_ptr(), gx.data_ptr(), partial.data_ptr<float>(),
                                is_bf16(x), rows, seq, D, smear_first, static_cast<float>(eps), stream_of(x));
    else
#endif
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "smear_norm_backward", [&] {
        smear_norm_backward_cpu<scalar_t>({x.data_ptr<scalar_t>(), g.data_ptr<Acc<scalar_t>>(), seq, D}, rows, smear_first, eps,
                                          gout.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), partial.data_ptr<Acc<scalar_t>>());
      });
    const auto gate_dtype = static_cast<at::ScalarType>(ctx->saved_data["gate_dtype"].toInt());
    return {gx, partial.sum(0).to(gate_dtype), at::Tensor()};
  }
};

// ---- XSA over (position, KV group) rows of `group` heads ----

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
#ifdef PGOLF_WITH_CUDA
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
#ifdef PGOLF_WITH_CUDA
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

std::pair<at::Tensor, at::Tensor> fused_residual_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& p,
                                                      const at::Tensor& q, double s) {
  // (autograd functions take no undefined inputs: a missing p is ones)
  const at::Tensor pp = p.defined() ? p : at::ones({x.size(-1)}, x.options().dtype(acc_dtype(x)));
  const variable_list outs = ResidualNorm::apply(x, y, pp, q, s);
  return {outs[0], outs[1]};
}

at::Tensor fused_smear_norm(const at::Tensor& x, const at::Tensor& gate, bool smear_first) {
  return SmearNorm::apply(x, gate, smear_first);
}

at::Tensor fused_xsa(const at::Tensor& y, const at::Tensor& v) { return Xsa::apply(y, v); }

}  // namespace pgolf
