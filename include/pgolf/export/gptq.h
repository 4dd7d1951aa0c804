// GPTQ: error-compensating rounding for the per-row integer quantisers of
// quantizer.h. Given the Hessian of a linear layer's inputs, each column's
// rounding error is pushed onto the columns not yet rounded, so that the
// layer's outputs W X^T, not its weights, stay close to the original.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "pgolf/export/quantizer.h"

namespace pgolf {

struct GptqOptions {
  double damp = 0.01;        // added to diag(H): damp * mean(diag(H))
  std::int64_t block = 128;  // columns per lazy-update block (any value gives the same result up to float rounding)
};

// GPTQ for one matrix W [rows, cols] whose inputs X [n, cols] have the
// Hessian H = X^T X / n [cols, cols] (symmetric positive semi-definite).
// The output has the format of quantize_rows(W, rq): int8 q [rows, cols] and
// fp16 scale [rows], and the scales are exactly quantize_rows(W, rq).scale;
// only the rounding differs. Every value is quantised as the family does it,
// clamp(round(clamp(x, -clip_r, clip_r) / scale_r), lo, qmax) with clip_r of
// the original row, so dequantize_rows decodes it and, for a diagonal H, the
// result equals quantize_rows(W, rq) wherever H_jj > 0. Columns with H_jj = 0
// (inputs that are always zero) quantise to 0. The result lies on W's device. Throws if H
// (after damping) is not positive definite.
RowQuantized gptq_quantize(const at::Tensor& W, const at::Tensor& H, const RowQuantizer& rq, const GptqOptions& opts = {});

// Several matrices of the same shape at once, with batched linear algebra:
// W [N, rows, cols] and H [N, cols, cols] -> N results, each the same as
// gptq_quantize(W[i], H[i], rq, opts).
std::vector<RowQuantized> gptq_quantize_batched(const at::Tensor& W, const at::Tensor& H, const RowQuantizer& rq,
                                                const GptqOptions& opts = {});

}  // namespace pgolf
