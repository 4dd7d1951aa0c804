// The per-row integer quantiser family of docs/ARTIFACT.md, used by export and by
// quantisation-aware training (fake quantisation with a straight-through gradient).
#pragma once
#include <ATen/ATen.h>

namespace pgolf {

// One member of the per-row integer quantiser family (docs/ARTIFACT.md). For b bits,
// qmax = 2^(b-1) - 1, and for each row r of w:
//   clip_r  = quantile(|w_r|, clip_q)            (clip_q = 1: max |w_r|)
//             or, with sd_k > 0 (SDClip), sd_k * std(w_r)  (unbiased std)
//   scale_r = max(clip_r / qmax, floor)          float32; floor = 1/qmax ("scale floor") or 1e-12
//   q       = clamp(round(clamp(w, -clip_r, clip_r) / scale_r), lo, qmax)
//             lo = -qmax (symmetric) or -qmax - 1
// The export stores fp16(scale_r) and decodes w' = q * fp16(scale_r); QAT's
// forward value is q * scale_r in float32. Both as every seed script does: the
// rounding divides by the float32 scale, never by the fp16 one.
struct RowQuantizer {
  int bits = 6;
  double clip_q = 1.0;
  bool floor = false;
  bool symmetric = false;
  double sd_k = 0.0;  // > 0: SDClip, the clip is sd_k standard deviations of the row
  bool gptq = false;  // round with GPTQ (gptq.h) instead of to nearest; the scales are the same
  int qmax() const { return (1 << (bits - 1)) - 1; }
  int lo() const { return symmetric ? -qmax() : -qmax() - 1; }
  bool operator==(const RowQuantizer& o) const {
    return bits == o.bits && clip_q == o.clip_q && floor == o.floor && symmetric == o.symmetric && sd_k == o.sd_k && gptq == o.gptq;
  }
};

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
