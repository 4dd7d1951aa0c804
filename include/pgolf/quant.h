// Quantisation rules of SPEC §5: which scheme each tensor gets, and per-row
// symmetric integer quantisation (used by export and by late QAT).
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "pgolf/config.h"

namespace pgolf {

enum class Scheme { Fp16, Fp32, IntRow, Int8Clip };

struct TensorPlan {
  Scheme scheme;
  int bits = 0;  // for IntRow
};

// SPEC §5.2, first matching rule wins: small or non-float tensors fp16;
// control tensors fp32; FP16_KEEP_NAME_PATTERNS fp16; ".mlp." int QUANT_MLP_BITS;
// "bigram" or ".attn." int QUANT_ATTN_BITS; anything else int8 clipped.
TensorPlan plan_tensor(const std::string& name, const at::Tensor& t, const Config& cfg);

// Per-row symmetric quantisation to `bits` (qmax = 2^(bits-1) - 1):
// scale_r = max|w_r| / qmax, clamped to >= 1e-12, stored fp16 and clamped to
// >= the smallest normal fp16; q = clamp(round(w / scale_r), -qmax-1, qmax).
struct RowQuantized {
  at::Tensor q;      // int8, same shape as w
  at::Tensor scale;  // fp16, one per row
};
RowQuantized quantize_rows(const at::Tensor& w, int bits);
// w = q * scale_r, as float32.
at::Tensor dequantize_rows(const RowQuantized& r);

// Late QAT: the forward value is dequantize(quantize(w)), the gradient passes
// straight through: w + stopgrad(q(w) - w).
at::Tensor fake_quantize_rows(const at::Tensor& w, int bits);

}  // namespace pgolf
