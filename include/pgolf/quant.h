// Quantisation rules of SPEC §5: which scheme each tensor gets, and per-row
// symmetric integer quantisation (used by export and by late QAT).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "pgolf/config.h"
#include "pgolf/model.h"

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

// The int8 fallback: rows clipped at the 99.99984th percentile of |w_r|,
// scale_r = max(clip_r / 127, 1/127) stored fp16, q = clamp(round(w/scale_r), -127, 127).
RowQuantized quantize_rows_int8_clipped(const at::Tensor& w);

// SPEC §5.1 magnitude pruning: in every 2-D parameter with more than 65,536
// entries, entries with |w| below the `frac` quantile of |w| become 0.
// Returns the number of entries zeroed.
std::int64_t prune_small_weights(const std::vector<NamedTensor>& params, double frac);

// One tensor as stored in the artifact.
struct QuantTensor {
  std::string name;
  Scheme scheme;
  int bits = 0;                    // IntRow / Int8Clip
  std::vector<std::int64_t> shape;  // of the original tensor
  at::Tensor data;                  // int8 (IntRow, Int8Clip), fp16 (Fp16) or fp32 (Fp32), CPU, contiguous
  at::Tensor scale;                 // fp16 per row (IntRow, Int8Clip); undefined otherwise
};

// Applies the plan of every parameter (SPEC §5.2).
std::vector<QuantTensor> quantize_tensors(const std::vector<NamedTensor>& params, const Config& cfg);
// The float32 tensor a QuantTensor stands for: q * scale_r, or the stored floats.
at::Tensor dequantize(const QuantTensor& q);
const char* scheme_name(Scheme s);

}  // namespace pgolf
