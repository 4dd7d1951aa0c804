#include "pgolf/export/quantizer.h"

#include <ATen/core/grad_mode.h>

namespace pgolf {

at::Tensor row_clip(const at::Tensor& w, const RowQuantizer& rq) {
  if (rq.sd_k > 0) return w.std(1) * rq.sd_k;
  at::Tensor absw = w.abs();
  return rq.clip_q >= 1.0 ? absw.amax(1) : at::quantile(absw, rq.clip_q, /*dim=*/1);
}

at::Tensor row_scale(const at::Tensor& clip, const RowQuantizer& rq) {
  const double qmax = rq.qmax();
  const double floor = rq.floor ? 1.0 / qmax : 1e-12;
  return (clip / qmax).clamp_min(floor);
}

at::Tensor round_to_grid(const at::Tensor& x, const at::Tensor& clip, const at::Tensor& scale, const RowQuantizer& rq) {
  return at::round(at::maximum(at::minimum(x, clip), -clip) / scale).clamp(rq.lo(), rq.qmax());
}

namespace {

// The integers (as float32 values) and the float32 scales of w's rows: the
// rounding that export and QAT share.
struct Rounded {
  at::Tensor q, scale;
};
Rounded round_rows(const at::Tensor& w, const RowQuantizer& rq) {
  at::Tensor w32 = w.detach().to(at::kFloat).reshape({w.dim() == 0 ? 1 : w.size(0), -1});
  at::Tensor clip = row_clip(w32, rq);
  at::Tensor scale = row_scale(clip, rq);
  return {round_to_grid(w32, clip.unsqueeze(1), scale.unsqueeze(1), rq), scale};
}

}  // namespace

RowQuantized quantize_rows(const at::Tensor& w, const RowQuantizer& rq) {
  at::NoGradGuard no_grad;
  const Rounded r = round_rows(w, rq);
  return {r.q.to(at::kChar), r.scale.to(at::kHalf)};
}

at::Tensor dequantize_rows(const RowQuantized& r) {
  return r.q.to(at::kFloat) * r.scale.to(at::kFloat).unsqueeze(1);
}

at::Tensor fake_quantize_rows(const at::Tensor& w, const RowQuantizer& rq) {
  at::Tensor deq;
  {
    at::NoGradGuard no_grad;
    const Rounded r = round_rows(w, rq);
    deq = (r.q * r.scale.unsqueeze(1)).view(w.sizes()).to(w.scalar_type());
  }
  return w + (deq - w).detach();
}

}  // namespace pgolf
