// GPTQ rounding: against a slow textbook column-by-column reference, the
// diagonal-Hessian case (plain rounding), the output error on correlated
// inputs, and the batched entry point.
#include <gtest/gtest.h>

#include "helpers.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "pgolf/export/gptq.h"
#include "pgolf/export/quantizer.h"

using namespace pgolf;
using test::gaussian;

namespace {

using Mat = std::vector<std::vector<double>>;

// Inputs X [n, cols] with correlated columns of different sizes; the listed
// columns are always zero.
at::Tensor correlated_inputs(std::int64_t n, std::int64_t cols, std::uint64_t seed, std::vector<std::int64_t> dead = {}) {
  at::Tensor x = at::matmul(gaussian({n, cols}, seed), gaussian({cols, cols}, seed + 1) / std::sqrt(double(cols)));
  x = x * at::logspace(-0.7, 0.7, cols);  // per-column sizes: a non-trivial order of diag(H)
  for (std::int64_t j : dead) x.select(1, j).zero_();
  return x;
}

at::Tensor hessian(const at::Tensor& x) {
  at::Tensor x64 = x.to(at::kDouble);
  return at::matmul(x64.t(), x64) / static_cast<double>(x.size(0));
}

Mat to_mat(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous();
  auto a = d.accessor<double, 2>();
  Mat m(d.size(0), std::vector<double>(d.size(1)));
  for (std::int64_t i = 0; i < d.size(0); ++i)
    for (std::int64_t j = 0; j < d.size(1); ++j) m[i][j] = a[i][j];
  return m;
}

// Lower Cholesky factor: a = L L^T.
Mat cholesky_lower(const Mat& a) {
  const std::size_t n = a.size();
  Mat L(n, std::vector<double>(n, 0.0));
  for (std::size_t j = 0; j < n; ++j) {
    double d = a[j][j];
    for (std::size_t k = 0; k < j; ++k) d -= L[j][k] * L[j][k];
    L[j][j] = std::sqrt(d);
    for (std::size_t i = j + 1; i < n; ++i) {
      double s = a[i][j];
      for (std::size_t k = 0; k < j; ++k) s -= L[i][k] * L[j][k];
      L[i][j] = s / L[j][j];
    }
  }
  return L;
}

// a^-1 from its Cholesky factor: a^-1 = L^-T L^-1, L^-1 by forward substitution.
Mat inverse_spd(const Mat& a) {
  const std::size_t n = a.size();
  Mat L = cholesky_lower(a), Li(n, std::vector<double>(n, 0.0)), inv(n, std::vector<double>(n, 0.0));
  for (std::size_t c = 0; c < n; ++c)  // column c of L^-1: solve L y = e_c
    for (std::size_t i = c; i < n; ++i) {
      double s = i == c ? 1.0 : 0.0;
      for (std::size_t k = c; k < i; ++k) s -= L[i][k] * Li[k][c];
      Li[i][c] = s / L[i][i];
    }
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t k = 0; k < n; ++k) inv[i][j] += Li[k][i] * Li[k][j];
  return inv;
}

// Textbook GPTQ, one column and one row at a time, in double, with the error
// propagated to every later column right away (no blocks).
RowQuantized slow_gptq(const at::Tensor& W, const at::Tensor& H, const RowQuantizer& rq, double damp) {
  const std::size_t rows = W.size(0), cols = W.size(1);
  const int qmax = (1 << (rq.bits - 1)) - 1, lo = rq.symmetric ? -qmax : -qmax - 1;
  Mat w = to_mat(W), h = to_mat(H);
  // Per-row clip and scale of the plain quantiser on the original rows (docs/ARTIFACT.md).
  std::vector<float> clip(rows), scale(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    std::vector<double> a;
    for (double v : w[r]) a.push_back(std::abs(v));
    std::sort(a.begin(), a.end());
    double c;
    if (rq.sd_k > 0) {
      const double mean = std::accumulate(w[r].begin(), w[r].end(), 0.0) / double(cols);
      double ss = 0;
      for (double v : w[r]) ss += (v - mean) * (v - mean);
      c = rq.sd_k * std::sqrt(ss / double(cols - 1));
    } else {
      const double pos = rq.clip_q * double(cols - 1);
      const auto i0 = static_cast<std::size_t>(std::floor(pos)), i1 = std::min(i0 + 1, cols - 1);
      c = a[i0] + (pos - std::floor(pos)) * (a[i1] - a[i0]);
    }
    clip[r] = static_cast<float>(c);
    const float floor = rq.floor ? 1.0f / float(qmax) : 1e-12f;
    scale[r] = std::max(clip[r] / float(qmax), floor);  // float32: rounds; stored and decoded as fp16
  }
  // Dead columns, damping.
  double mean_diag = 0;
  for (std::size_t j = 0; j < cols; ++j) {
    if (h[j][j] == 0) {
      h[j][j] = 1;
      for (auto& row : w) row[j] = 0;
    }
    mean_diag += h[j][j] / double(cols);
  }
  for (std::size_t j = 0; j < cols; ++j) h[j][j] += damp * mean_diag;
  // Descending diag(H), ties in column order.
  std::vector<std::size_t> order(cols);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return h[a][a] > h[b][b]; });
  Mat hp(cols, std::vector<double>(cols)), wp(rows, std::vector<double>(cols));
  for (std::size_t i = 0; i < cols; ++i)
    for (std::size_t k = 0; k < cols; ++k) hp[i][k] = h[order[i]][order[k]];
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < cols; ++k) wp[r][k] = w[r][order[k]];
  // U: upper factor of H^-1 = U^T U, i.e. the transpose of its lower factor.
  Mat Lt = cholesky_lower(inverse_spd(hp));
  auto U = [&](std::size_t i, std::size_t j) { return Lt[j][i]; };

  at::Tensor q = at::empty({std::int64_t(rows), std::int64_t(cols)}, at::kChar);
  at::Tensor s = at::empty({std::int64_t(rows)}, at::kHalf);
  for (std::size_t r = 0; r < rows; ++r) {
    const float decoded = static_cast<float>(c10::Half(scale[r]));
    s[r] = decoded;
    for (std::size_t j = 0; j < cols; ++j) {
      const float x = std::clamp(static_cast<float>(wp[r][j]), -clip[r], clip[r]);
      const float v = std::clamp<float>(std::nearbyint(x / scale[r]), lo, qmax);  // half to even, as torch.round
      q[r][order[j]] = static_cast<std::int8_t>(v);
      const double err = (wp[r][j] - double(v) * double(decoded)) / U(j, j);
      for (std::size_t k = j + 1; k < cols; ++k) wp[r][k] -= err * U(j, k);
    }
  }
  return {q, s};
}

double output_error(const at::Tensor& W, const RowQuantized& r, const at::Tensor& X) {
  return at::matmul(W.to(at::kDouble) - dequantize_rows(r).to(at::kDouble), X.to(at::kDouble).t()).norm().item<double>();
}

std::int64_t count_differences(const RowQuantized& a, const RowQuantized& b) {
  return a.q.ne(b.q).sum().item<std::int64_t>();
}

RowQuantizer sdclip(int bits, double k) {
  RowQuantizer rq;
  rq.bits = bits;
  rq.sd_k = k;
  return rq;
}

}  // namespace

TEST(Gptq, MatchesSlowTextbookReference) {
  struct Case {
    std::int64_t rows, cols, block;
    RowQuantizer rq;
    std::vector<std::int64_t> dead;
  };
  const std::vector<Case> cases = {
      {6, 20, 8, {4, 1.0, false, false}, {3}},           // blocks 8 + 8 + 4
      {5, 37, 8, {6, 1.0, true, true}, {0, 36}},         // floor, symmetric; 4 blocks + 5
      {5, 37, 8, {5, 0.9, false, false}, {11}},          // quantile clip
      {6, 20, 8, {3, 1.0, true, false}, {}},             // very coarse, floor
      {6, 20, 1, {4, 1.0, false, true}, {7}},            // one column per block
      {5, 37, 128, {6, 1.0, false, false}, {5}},         // one partial block
      {6, 20, 8, sdclip(4, 2.0), {2}},                   // SDClip
  };
  std::uint64_t seed = 100;
  for (const Case& c : cases) {
    // Rows of different sizes, some below 1 so that the scale floor binds.
    at::Tensor W = gaussian({c.rows, c.cols}, seed++) * at::logspace(-1.2, 0.4, c.rows).unsqueeze(1);
    at::Tensor H = hessian(correlated_inputs(64, c.cols, seed++, c.dead));
    const GptqOptions opts{0.01, c.block};
    RowQuantized got = gptq_quantize(W, H, c.rq, opts), want = slow_gptq(W, H, c.rq, opts.damp);
    const std::string what = std::to_string(c.rows) + "x" + std::to_string(c.cols) + " block " + std::to_string(c.block) +
                             " bits " + std::to_string(c.rq.bits);
    ASSERT_EQ(got.q.sizes(), want.q.sizes()) << what;
    EXPECT_EQ(got.q.scalar_type(), at::kChar);
    EXPECT_EQ(got.scale.scalar_type(), at::kHalf);
    EXPECT_TRUE(at::equal(got.scale, want.scale)) << what;
    EXPECT_TRUE(at::equal(got.scale, quantize_rows(W, c.rq).scale)) << what;
    EXPECT_EQ(count_differences(got, want), 0) << what;
    for (std::int64_t j : c.dead) EXPECT_TRUE(got.q.select(1, j).eq(0).all().item<bool>()) << what << " dead column " << j;
    // Not plain rounding in disguise: GPTQ moves a fair share of the integers.
    EXPECT_GT(count_differences(got, quantize_rows(W, c.rq)), c.rows * c.cols / 20) << what;
  }
}

TEST(Gptq, DiagonalHessianIsPlainRounding) {
  // With H diagonal, H^-1 and its Cholesky factor U are exactly diagonal (for
  // any damping and column order), so no error is propagated and every value
  // is rounded on its own: exactly quantize_rows, for every family member. A
  // non-constant diagonal also reorders the columns, which must be undone.
  // (The three Hessians go in one batched call to keep the test fast.)
  at::Tensor W = gaussian({16, 50}, 7) * at::logspace(-2.5, 0.7, 16).unsqueeze(1);
  W[4][9] = 30.0f;  // an outlier, clipped by the quantile and SDClip members
  W[11].zero_();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(8);
  at::Tensor H = at::stack({at::eye(50, at::kDouble), at::eye(50, at::kDouble) * 3.7,
                            at::diag(at::rand({50}, gen, at::kDouble) * 5 + 0.1)});
  std::vector<RowQuantizer> family;
  for (int bits : {4, 6})
    for (double clip_q : {1.0, 0.95})
      for (bool floor : {false, true})
        for (bool sym : {false, true}) family.push_back({bits, clip_q, floor, sym});
  family.push_back(sdclip(5, 2.5));
  family.push_back(sdclip(8, 12.85));
  int checked = 0;
  for (const RowQuantizer& rq : family) {
    const std::string what = "bits " + std::to_string(rq.bits) + " q " + std::to_string(rq.clip_q) + " floor " +
                             std::to_string(rq.floor) + " sym " + std::to_string(rq.symmetric) + " k " + std::to_string(rq.sd_k);
    const RowQuantized want = quantize_rows(W, rq);
    for (const GptqOptions& opts : {GptqOptions{}, GptqOptions{0.1, 16}}) {
      std::vector<RowQuantized> got = gptq_quantize_batched(W.unsqueeze(0).expand({3, 16, 50}), H, rq, opts);
      for (const RowQuantized& g : got) {
        EXPECT_TRUE(at::equal(g.scale, want.scale)) << what;
        EXPECT_EQ(count_differences(g, want), 0) << what;
        ++checked;
      }
    }
    EXPECT_EQ(count_differences(gptq_quantize(W, H[2], rq), want), 0) << what << " (one matrix)";
  }
  EXPECT_EQ(checked, 18 * 2 * 3);
}

TEST(Gptq, LowersOutputErrorOnCorrelatedInputs) {
  const std::int64_t n = 512, rows = 64, cols = 96;
  at::Tensor X = at::matmul(gaussian({n, cols}, 21), gaussian({cols, cols}, 22));  // mixed: strongly correlated columns
  at::Tensor H = hessian(X);
  at::Tensor W = gaussian({rows, cols}, 23);
  for (int bits : {4, 6}) {
    const RowQuantizer rq{bits, 1.0, false, false};
    const double plain = output_error(W, quantize_rows(W, rq), X);
    for (std::int64_t block : {128, 16}) {
      const double gptq = output_error(W, gptq_quantize(W, H, rq, {0.01, block}), X);
      std::printf("[ gptq     ] int%d block %3lld: ||(W - deq(Q)) X^T||_F plain rounding %.4f, GPTQ %.4f (x%.3f)\n", bits,
                  static_cast<long long>(block), plain, gptq, gptq / plain);
      EXPECT_LT(gptq, 0.8 * plain) << "bits " << bits << " block " << block;
    }
  }
}

TEST(Gptq, BatchedEqualsOneMatrixAtATime) {
  const std::int64_t N = 3, rows = 24, cols = 40;
  at::Tensor W = gaussian({N, rows, cols}, 31) * at::tensor({0.2, 1.0, 3.0}, at::kFloat).view({N, 1, 1});
  std::vector<at::Tensor> hs;
  for (std::int64_t i = 0; i < N; ++i)
    hs.push_back(hessian(correlated_inputs(96, cols, 40 + 2 * i, i == 1 ? std::vector<std::int64_t>{5, 17} : std::vector<std::int64_t>{})));
  at::Tensor H = at::stack(hs).to(at::kFloat);  // float32 H is accepted too
  for (const RowQuantizer& rq : {RowQuantizer{6, 1.0, false, false}, RowQuantizer{4, 1.0, true, true}}) {
    const GptqOptions opts{0.01, 16};  // blocks 16 + 16 + 8
    std::vector<RowQuantized> batched = gptq_quantize_batched(W, H, rq, opts);
    ASSERT_EQ(batched.size(), static_cast<std::size_t>(N));
    for (std::int64_t i = 0; i < N; ++i) {
      RowQuantized one = gptq_quantize(W[i], H[i], rq, opts);
      EXPECT_TRUE(at::equal(batched[i].q, one.q)) << "matrix " << i << " bits " << rq.bits;
      EXPECT_TRUE(at::equal(batched[i].scale, one.scale)) << "matrix " << i;
      EXPECT_GT(count_differences(one, quantize_rows(W[i], rq)), 0) << "matrix " << i;
    }
  }
  EXPECT_THROW(gptq_quantize_batched(W, H.narrow(0, 0, 2), RowQuantizer{}), c10::Error);
  EXPECT_THROW(gptq_quantize(W[0], H[0].narrow(1, 0, 39), RowQuantizer{}), c10::Error);
}

TEST(Gptq, OnCudaMatchesCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::Tensor W = gaussian({2, 24, 40}, 51);
  at::Tensor H = at::stack({hessian(correlated_inputs(96, 40, 52, {3})), hessian(correlated_inputs(96, 40, 54))});
  const RowQuantizer rq{5, 1.0, true, false};
  const GptqOptions opts{0.01, 16};
  std::vector<RowQuantized> cpu = gptq_quantize_batched(W, H, rq, opts);
  std::vector<RowQuantized> gpu = gptq_quantize_batched(W.cuda(), H, rq, opts);  // H follows W to the GPU
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_TRUE(gpu[i].q.is_cuda());
    EXPECT_TRUE(at::equal(gpu[i].q.cpu(), cpu[i].q)) << "matrix " << i;
    EXPECT_TRUE(at::equal(gpu[i].scale.cpu(), cpu[i].scale)) << "matrix " << i;
  }
}
