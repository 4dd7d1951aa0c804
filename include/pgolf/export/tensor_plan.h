// How one tensor is stored in the artifact (docs/ARTIFACT.md): the plain data
// of a plan and its text form, as the QUANT_* and QAT_QUANT keys write it.
// The quantiser's maths is in quantizer.h; which tensor gets which plan in quant.h.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

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

enum class Scheme : std::uint8_t { Fp16 = 0, Fp32 = 1, IntRow = 2 };

// How one tensor is stored: fp16, fp32, or per-row integers.
struct TensorPlan {
  TensorPlan() = default;
  TensorPlan(Scheme s, RowQuantizer q = {}) : scheme(s), quant(q) {}
  Scheme scheme = Scheme::Fp16;
  RowQuantizer quant;  // for IntRow
  // Equal when they store a tensor the same way (the quantiser matters only for IntRow).
  bool operator==(const TensorPlan& o) const { return scheme == o.scheme && (scheme != Scheme::IntRow || quant == o.quant); }
};

// A plan written as text, as in the QUANT_* keys: "fp16", "fp32", or
// "int<B>" followed by comma-separated options "q=<Q>", "k=<K>" (SDClip: the
// clip is K row standard deviations; replaces q), "floor", "sym", "gptq"
// (defaults: Q = 1, no floor, asymmetric), e.g. "int6,q=0.9999984,floor,sym".
// Throws std::invalid_argument saying what is wrong on anything else.
TensorPlan parse_tensor_plan(std::string_view text);
std::string format_tensor_plan(const TensorPlan& plan);

}  // namespace pgolf
