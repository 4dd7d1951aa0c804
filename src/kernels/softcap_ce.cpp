// The fused soft-capped cross-entropy (softcap_ce.h): CPU loops over
// fused_math.h, the CUDA kernels of softcap_ce.cu on the GPU, and the
// chunked autograd function that never holds a whole batch of logits.
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <limits>
#include <vector>

#include "fused_detail.h"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/kernels/softcap_ce.h"
#include "pgolf/model/layers.h"

namespace pgolf {

// cross_entropy(softcap(z in float32 or float64), targets).
at::Tensor softcap_cross_entropy(const at::Tensor& z, const at::Tensor& targets, double cap, at::Reduction::Reduction reduction) {
  const auto acc = z.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return at::cross_entropy_loss(softcap(z.to(acc), cap), targets, {}, reduction);
}

namespace fm = fused_math;
using namespace fused_detail;

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
#if PGOLF_CUDA_KERNELS
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
#if PGOLF_CUDA_KERNELS
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

}  // namespace

at::Tensor fused_softcap_cross_entropy(const at::Tensor& h, const at::Tensor& w, const at::Tensor& targets, double cap,
                                       std::int64_t chunk_rows) {
  return SoftcapCrossEntropy::apply(h, w, targets, cap, chunk_rows);
}


}  // namespace pgolf
