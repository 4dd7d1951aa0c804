#include "pgolf/export/lqer.h"

#include <stdexcept>
#include <string>

namespace pgolf {

namespace {

// x quantised with the fp16 scale `s` of each element (broadcast): the
// integers clamp(round(x / s), lo, hi), 0 where s is 0.
at::Tensor round_to(const at::Tensor& x, const at::Tensor& s, int lo, int hi) {
  const at::Tensor safe = at::where(s > 0, s, at::ones_like(s));
  return at::where(s > 0, (x / safe).round().clamp(lo, hi), at::zeros_like(x)).to(at::kChar);
}

}  // namespace

LowRankCorrection fit_low_rank(const at::Tensor& error, std::int64_t rank) {
  const std::int64_t rows = error.size(0), cols = error.size(1);
  if (rank < 1 || rank > std::min(rows, cols))
    throw std::invalid_argument("LQER rank " + std::to_string(rank) + " is not in [1, min(rows, cols)] for a " +
                                std::to_string(rows) + "x" + std::to_string(cols) + " matrix");
  const auto [U, S, Vh] = at::linalg_svd(error.to(at::kDouble), /*full_matrices=*/false);
  const at::Tensor A = (U.narrow(1, 0, rank) * S.narrow(0, 0, rank)).to(at::kFloat);  // [rows, r]
  const at::Tensor B = Vh.narrow(0, 0, rank).to(at::kFloat).contiguous();            // [r, cols]

  LowRankCorrection c;
  c.rank = rank;
  c.a_scale = (A.abs().max() / 1.5).to(at::kHalf).reshape({1});
  c.a = round_to(A, c.a_scale.to(at::kFloat), kLqerALo, kLqerAHi).flatten().contiguous();
  // B's flat elements in blocks of 64 (the last may be short: padded with 0).
  const std::int64_t n = rank * cols, blocks = (n + kLqerBlock - 1) / kLqerBlock;
  const at::Tensor flat = at::constant_pad_nd(B.flatten(), {0, blocks * kLqerBlock - n}).view({blocks, kLqerBlock});
  c.b_scale = (std::get<0>(flat.abs().max(1)) / 7.5).to(at::kHalf).contiguous();
  c.b = round_to(flat, c.b_scale.to(at::kFloat).unsqueeze(1), kLqerBLo, kLqerBHi).flatten().narrow(0, 0, n).contiguous();
  return c;
}

at::Tensor low_rank_delta(const LowRankCorrection& c, std::int64_t rows, std::int64_t cols) {
  const at::Tensor A = c.a.to(at::kFloat).view({rows, c.rank}) * c.a_scale.to(at::kFloat);
  const std::int64_t n = c.rank * cols;
  const at::Tensor s = c.b_scale.to(at::kFloat).repeat_interleave(kLqerBlock).narrow(0, 0, n);
  const at::Tensor B = (c.b.to(at::kFloat) * s).view({c.rank, cols});
  return at::matmul(A, B);
}

}  // namespace pgolf
