// The embedding's SmearGate with its RMSNorm fused (smear_norm.h): CPU
// loops over fused_math.h, the CUDA kernels of smear_norm.cu on the GPU.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "fused_detail.h"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/smear_norm.h"
#include "pgolf/model/layers.h"

namespace pgolf {

at::Tensor smear_norm(const at::Tensor& x, const at::Tensor& gate, bool smear_first) {
  return smear_first ? rms_norm(smear_gate(x, gate)) : smear_gate(rms_norm(x), gate);
}

namespace fm = fused_math;
using namespace fused_detail;

namespace {

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
#if PGOLF_CUDA_KERNELS
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
#if PGOLF_CUDA_KERNELS
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


}  // namespace

at::Tensor fused_smear_norm(const at::Tensor& x, const at::Tensor& gate, bool smear_first) {
  return SmearNorm::apply(x, gate, smear_first);
}


}  // namespace pgolf
