#include "pgolf/export/gptq.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <tuple>

namespace pgolf {

namespace {

// The Cholesky factor of each matrix of a (lower: a = L L^T, upper: a = U^T U).
at::Tensor checked_cholesky(const at::Tensor& a, bool upper, const char* what) {
  auto [f, info] = at::linalg_cholesky_ex(a, upper);
  TORCH_CHECK(info.eq(0).all().item<bool>(), "gptq: ", what, " is not positive definite (raise GPTQ_DAMP)");
  return f;
}

}  // namespace

// GPTQ, per row r (rows are independent and share H): minimise
//   ||(w_r - q_r) X^T||^2 = (w_r - q_r) H (w_r - q_r)^T,   H = X^T X / n,
// rounding one column at a time. After rounding column j with error d_j, the
// best change of the columns F not yet rounded is
//   w_F -= d_j / [H_F^-1]_jj * [H_F^-1]_{j,F}           (H_F: H restricted to F = {j, j+1, ...})
// With U the upper Cholesky factor of H^-1 (H^-1 = U^T U), row j of U is
// exactly [H_F^-1]_{j,F} / sqrt([H_F^-1]_jj), so with err_j = d_j / U_jj:
//   q_j   = quant(w_j)                          (the family's rounding, fixed scale and clip)
//   err_j = (w_j - q_j * scale) / U_jj
//   w_k  -= err_j * U_jk                        for every k > j
// Lazy batch updates: inside a block of B columns only the block's columns are
// updated; after the block the rest at once, W[:, after] -= Err[:, block] @ U[block, after].
// Preparation: dead columns (H_jj = 0: the input is always 0) get H_jj = 1 and
// W[:, j] = 0; damping H += damp * mean(diag H) * I; columns in the order of
// descending H_jj (stable), undone at the end.
// Numerics: H, U and the working copy of W are float64 (the Cholesky of an
// ill-conditioned H^-1 is fragile in float32). A value is quantised exactly as
// quantize_rows does, in float32: x -> float, clamp to [-clip_r, clip_r],
// divide by the float32 scale_r, round half to even, clamp to [lo, qmax]; its
// error is measured against the decoded value q * fp16(scale_r). Clamping to the
// clip as well as to the integer range keeps GPTQ a pure change of rounding
// (same value range as the family; a diagonal H gives quantize_rows exactly).
// Everything is batched over N matrices: W [N, rows, cols], H [N, cols, cols].
std::vector<RowQuantized> gptq_quantize_batched(const at::Tensor& W, const at::Tensor& H, const RowQuantizer& rq,
                                                const GptqOptions& opts) {
  at::NoGradGuard no_grad;
  TORCH_CHECK(W.dim() == 3 && H.dim() == 3, "gptq: expected W [N, rows, cols] and H [N, cols, cols], got ", W.sizes(),
              " and ", H.sizes());
  const std::int64_t N = W.size(0), rows = W.size(1), cols = W.size(2);
  TORCH_CHECK(H.size(0) == N && H.size(1) == cols && H.size(2) == cols, "gptq: H ", H.sizes(), " does not fit W ",
              W.sizes());
  TORCH_CHECK(opts.block >= 1, "gptq: block must be >= 1, got ", opts.block);
  TORCH_CHECK(opts.damp >= 0, "gptq: damp must be >= 0, got ", opts.damp);
  std::vector<RowQuantized> out;
  if (N == 0) return out;

  // Scales (and clips) of the plain quantiser on the original rows.
  at::Tensor w32 = W.detach().to(at::kFloat).contiguous();
  at::Tensor flat = w32.view({N * rows, cols});
  at::Tensor clip = row_clip(flat, rq);
  at::Tensor scale = row_scale(clip, rq).view({N, rows});        // rounds, as quantize_rows
  at::Tensor scale16 = scale.to(at::kHalf);                       // stored
  at::Tensor decoded = scale16.to(at::kDouble);                   // what decoding multiplies by
  clip = clip.view({N, rows});

  at::Tensor w = w32.to(at::kDouble);
  at::Tensor h = H.detach().to(W.device(), at::kDouble, /*non_blocking=*/false, /*copy=*/true);
  at::Tensor diag = h.diagonal(0, -2, -1);  // a view: edits change h
  at::Tensor dead = diag.eq(0);
  diag.masked_fill_(dead, 1.0);
  w.masked_fill_(dead.unsqueeze(1), 0.0);
  diag.add_(diag.mean(-1, /*keepdim=*/true) * opts.damp);

  at::Tensor perm = std::get<1>(at::sort(diag, /*stable=*/true, /*dim=*/-1, /*descending=*/true));  // [N, cols]
  h = h.gather(1, perm.unsqueeze(2).expand({N, cols, cols})).gather(2, perm.unsqueeze(1).expand({N, cols, cols}));
  at::Tensor col_index = perm.unsqueeze(1).expand({N, rows, cols});
  w = w.gather(2, col_index).contiguous();

  at::Tensor hinv = at::cholesky_inverse(checked_cholesky(h, /*upper=*/false, "H"));
  at::Tensor U = checked_cholesky(hinv, /*upper=*/true, "H^-1");

  at::Tensor qp = at::empty({N, rows, cols}, w32.options().dtype(at::kChar));
  for (std::int64_t i1 = 0; i1 < cols; i1 += opts.block) {
    const std::int64_t bs = std::min(opts.block, cols - i1), i2 = i1 + bs;
    at::Tensor w1 = w.narrow(2, i1, bs);                       // view into w
    at::Tensor u1 = U.narrow(1, i1, bs).narrow(2, i1, bs);     // [N, bs, bs]
    at::Tensor err1 = at::empty({N, rows, bs}, w.options());
    for (std::int64_t j = 0; j < bs; ++j) {
      at::Tensor x = w1.select(2, j);  // [N, rows]
      at::Tensor q = round_to_grid(x.to(at::kFloat), clip, scale, rq);
      qp.select(2, i1 + j).copy_(q);
      at::Tensor u = u1.select(1, j);  // row j of U within the block, [N, bs]
      at::Tensor e = (x - q.to(at::kDouble) * decoded) / u.select(1, j).unsqueeze(1);
      err1.select(2, j).copy_(e);
      if (j + 1 < bs) w1.narrow(2, j + 1, bs - j - 1).sub_(e.unsqueeze(2) * u.narrow(1, j + 1, bs - j - 1).unsqueeze(1));
    }
    if (i2 < cols) w.narrow(2, i2, cols - i2).sub_(at::matmul(err1, U.narrow(1, i1, bs).narrow(2, i2, cols - i2)));
  }

  at::Tensor q = at::empty_like(qp).scatter_(2, col_index, qp);  // back to the original column order
  out.reserve(static_cast<std::size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) out.push_back({q[i].clone(), scale16[i].clone()});
  return out;
}

RowQuantized gptq_quantize(const at::Tensor& W, const at::Tensor& H, const RowQuantizer& rq, const GptqOptions& opts) {
  TORCH_CHECK(W.dim() == 2 && H.dim() == 2, "gptq: expected W [rows, cols] and H [cols, cols], got ", W.sizes(), " and ",
              H.sizes());
  return gptq_quantize_batched(W.unsqueeze(0), H.unsqueeze(0), rq, opts)[0];
}

}  // namespace pgolf
