// The per-row integer quantiser family of docs/ARTIFACT.md, used by export and by
// quantisation-aware training (fake quantisation with a straight-through gradient).
#pragma once
#include <ATen/ATen.h>

#include "pgolf/export/tensor_plan.h"

namespace pgolf {

struct RowQuantized {
  at::Tensor q;      // int8, [rows, cols]
  at::Tensor scale;  // fp16, [rows]
};
// clip_r for every row of w [rows, cols] (float32): the clip_q quantile of
// |w_r|, or sd_k standard deviations with SDClip.
at::Tensor row_clip(const at::Tensor& w, const RowQuantizer& rq);
// scale_r for each row's clip: max(clip / qmax, floor), float32.
at::Tensor row_scale(const at::Tensor& clip, const RowQuantizer& rq);
// The family's rounding of values x (float32) with the clip and scale of
// their rows, broadcast to x's shape: clamp(round(clamp(x, -clip, clip) / scale), lo, qmax).
at::Tensor round_to_grid(const at::Tensor& x, const at::Tensor& clip, const at::Tensor& scale, const RowQuantizer& rq);
// Rounds to nearest with the float32 scales, which it returns as fp16 (rq.gptq
// is for the caller: see gptq.h). w is viewed as [size(0), -1].
RowQuantized quantize_rows(const at::Tensor& w, const RowQuantizer& rq);
// w = q * scale_r, as float32.
at::Tensor dequantize_rows(const RowQuantized& r);

// Late QAT: the forward value is q * scale_r with the float32 scale, the
// gradient passes straight through: w + stopgrad(q(w) * scale_r - w).
at::Tensor fake_quantize_rows(const at::Tensor& w, const RowQuantizer& rq);

}  // namespace pgolf
