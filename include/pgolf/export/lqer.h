// LQER: a low-rank correction of a quantised matrix's error. With the error
// E = W - deq(Q) and its SVD E = U S V^T, the rank-r factors
//   A = U_r S_r  [rows, r], stored int2 in [-2, 1] with one fp16 scale
//                 sA = max|A| / 1.5,
//   B = V_r^T    [r, cols], stored int4 in [-8, 7] with an fp16 scale per 64
//                 consecutive elements (row-major), sB = max|block| / 7.5,
// each value as q = clamp(round(x / s), lo, hi) with the fp16 scale; the
// weight loaded is deq(Q) + (qA sA)(qB sB).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace pgolf {

constexpr std::int64_t kLqerBlock = 64;  // B's elements per scale
constexpr int kLqerALo = -2, kLqerAHi = 1, kLqerBLo = -8, kLqerBHi = 7;

struct LowRankCorrection {
  std::int64_t rank = 0;  // 0: none
  at::Tensor a, a_scale;  // int8 [rows*rank], fp16 [1]
  at::Tensor b, b_scale;  // int8 [rank*cols], fp16 [ceil(rank*cols / 64)]
};

// The factors of the rank-`rank` correction of `error` [rows, cols] (any
// float type, CPU); rank must be in [1, min(rows, cols)].
LowRankCorrection fit_low_rank(const at::Tensor& error, std::int64_t rank);
// (qA sA)(qB sB) as float32 [rows, cols].
at::Tensor low_rank_delta(const LowRankCorrection& c, std::int64_t rows, std::int64_t cols);

}  // namespace pgolf
