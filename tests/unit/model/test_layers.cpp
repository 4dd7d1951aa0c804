// Each layer of docs/MODEL.md ("The model") against a slow, loop-based re-computation in float64.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "pgolf/kernels/relu2.h"
#include "pgolf/kernels/xsa.h"
#include "pgolf/model/layers.h"

using namespace pgolf;

namespace {

at::Tensor randn(at::IntArrayRef shape, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::normal(0.0, 1.0, shape, gen, at::kDouble);
}

void expect_close(const at::Tensor& a, const at::Tensor& b, double tol) {
  ASSERT_EQ(a.sizes(), b.sizes());
  double err = (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LT(err, tol);
}

}  // namespace

TEST(Layers, RmsNormMatchesLoop) {
  at::Tensor x = randn({3, 5, 16}, 1).to(at::kFloat);
  at::Tensor got = rms_norm(x);
  auto a = x.accessor<float, 3>();
  at::Tensor want = at::empty({3, 5, 16}, at::kDouble);
  auto w = want.accessor<double, 3>();
  const double eps = std::numeric_limits<float>::epsilon();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) {
      double ms = 0;
      for (int k = 0; k < 16; ++k) ms += double(a[i][j][k]) * a[i][j][k];
      double inv = 1.0 / std::sqrt(ms / 16 + eps);
      for (int k = 0; k < 16; ++k) w[i][j][k] = a[i][j][k] * inv;
    }
  expect_close(got, want, 1e-5);
}

TEST(Layers, RopeMatchesSpecFormula) {
  const int B = 2, H = 3, T = 7, D = 8;
  const double base = 10000;
  at::Tensor x = randn({B, H, T, D}, 2);
  auto [c, s] = rope_tables(T, D, base, at::kCPU);
  at::Tensor got = apply_rope(x, c.to(at::kDouble), s.to(at::kDouble));
  at::Tensor want = at::empty_like(x);
  auto xa = x.accessor<double, 4>();
  auto wa = want.accessor<double, 4>();
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int t = 0; t < T; ++t)
        for (int j = 0; j < D / 2; ++j) {
          double theta = t * std::pow(base, -2.0 * j / D);
          double x1 = xa[b][h][t][j], x2 = xa[b][h][t][j + D / 2];
          wa[b][h][t][j] = x1 * std::cos(theta) + x2 * std::sin(theta);
          wa[b][h][t][j + D / 2] = -x1 * std::sin(theta) + x2 * std::cos(theta);
        }
  expect_close(got, want, 1e-5);  // tables are float32
}

TEST(Layers, PartialRopeRotatesOnlyTheFirstDimsWithTheirOwnFrequencies) {
  const int B = 1, H = 2, T = 6, D = 12, d = 4;
  const double base = 500;
  at::Tensor x = randn({B, H, T, D}, 3);
  auto [c, s] = rope_tables(T, d, base, at::kCPU);
  at::Tensor got = apply_rope(x, c.to(at::kDouble), s.to(at::kDouble));
  at::Tensor want = x.clone();
  auto xa = x.accessor<double, 4>();
  auto wa = want.accessor<double, 4>();
  for (int h = 0; h < H; ++h)
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < d / 2; ++j) {
        double theta = t * std::pow(base, -2.0 * j / d);  // frequencies over the d rotated dims
        double x1 = xa[0][h][t][j], x2 = xa[0][h][t][j + d / 2];
        wa[0][h][t][j] = x1 * std::cos(theta) + x2 * std::sin(theta);
        wa[0][h][t][j + d / 2] = -x1 * std::sin(theta) + x2 * std::cos(theta);
      }
  expect_close(got, want, 1e-5);
  EXPECT_TRUE(at::equal(got.narrow(-1, d, D - d), x.narrow(-1, d, D - d)));  // the rest passes through
}

TEST(Layers, NtkBaseMatchesSpecValues) {
  // docs/PRESETS.md: #219 (d = 64) about 20,452 and #389 (d = 16) about 22,082 at T = 2048.
  EXPECT_NEAR(ntk_rope_base(10000, 2048, 1024, 64), 10000 * std::pow(2.0, 64.0 / 62.0), 1e-9);
  EXPECT_NEAR(ntk_rope_base(10000, 2048, 1024, 64), 20452, 1.0);
  EXPECT_NEAR(ntk_rope_base(10000, 2048, 1024, 16), 22082, 1.0);
  EXPECT_EQ(ntk_rope_base(10000, 1024, 1024, 64), 10000);  // not longer: unchanged
  EXPECT_EQ(ntk_rope_base(10000, 512, 1024, 64), 10000);
  EXPECT_EQ(ntk_rope_base(10000, 4096, 0, 64), 10000);  // off
}

TEST(Layers, SmearGateMatchesLoop) {
  at::Tensor x = randn({2, 6, 4}, 3), gate = randn({4}, 4);
  at::Tensor got = smear_gate(x, gate);
  auto xa = x.accessor<double, 3>();
  auto ga = gate.accessor<double, 1>();
  at::Tensor want = at::empty_like(x);
  auto wa = want.accessor<double, 3>();
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 6; ++t)
      for (int d = 0; d < 4; ++d) {
        double g = 1.0 / (1.0 + std::exp(-ga[d]));
        double prev = t == 0 ? 0.0 : xa[b][t - 1][d];
        wa[b][t][d] = (1 - g) * xa[b][t][d] + g * prev;
      }
  expect_close(got, want, 1e-12);
}

TEST(Layers, BigramBucketsMatchInt32Formula) {
  // Large ids make 36313*t overflow int32: the reference wraps, so do we.
  at::Tensor tokens = at::tensor({5, 1023, 0, 65535, 60000, 7, 7, 1}, at::kLong).view({2, 4});
  const std::int64_t B = 2048;
  at::Tensor got = bigram_buckets(tokens, B);
  ASSERT_EQ(got.scalar_type(), at::kLong);
  auto ta = tokens.accessor<std::int64_t, 2>();
  auto ga = got.accessor<std::int64_t, 2>();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(ga[r][0], B - 1);  // position 0
    for (int i = 1; i < 4; ++i) {
      auto wrap = [](std::int64_t v) { return static_cast<std::int32_t>(static_cast<std::uint32_t>(v)); };
      std::int32_t h = wrap(36313 * ta[r][i]) ^ wrap(27191 * ta[r][i - 1]);
      std::int64_t m = ((h % (B - 1)) + (B - 1)) % (B - 1);  // floor modulo
      EXPECT_EQ(ga[r][i], m) << r << "," << i;
    }
  }
}

TEST(Layers, GqaAttentionMatchesExplicitSoftmaxWithRepeatedKv) {
  const int B = 2, H = 4, Hkv = 2, T = 5, D = 8;
  at::Tensor q = randn({B, H, T, D}, 5), k = randn({B, Hkv, T, D}, 6), v = randn({B, Hkv, T, D}, 7);
  at::Tensor got = causal_attention(q, k, v);
  auto qa = q.accessor<double, 4>();
  auto ka = k.accessor<double, 4>();
  auto va = v.accessor<double, 4>();
  at::Tensor want = at::zeros({B, H, T, D}, at::kDouble);
  auto wa = want.accessor<double, 4>();
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int g = h / (H / Hkv);  // query head h reads KV head g
      for (int i = 0; i < T; ++i) {
        std::vector<double> s(i + 1);
        double mx = -1e300, z = 0;
        for (int j = 0; j <= i; ++j) {
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += qa[b][h][i][d] * ka[b][g][j][d];
          s[j] = dot / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        for (int j = 0; j <= i; ++j) z += (s[j] = std::exp(s[j] - mx));
        for (int j = 0; j <= i; ++j)
          for (int d = 0; d < D; ++d) wa[b][h][i][d] += s[j] / z * va[b][g][j][d];
      }
    }
  expect_close(got, want, 1e-10);
}

TEST(Layers, XsaRemovesProjectionOnOwnGroupsValue) {
  const int B = 1, T = 3, H = 4, Hkv = 2, D = 5;
  at::Tensor y = randn({B, T, H, D}, 8), v = randn({B, T, Hkv, D}, 9);
  at::Tensor got = xsa(y, v);
  auto ya = y.accessor<double, 4>();
  auto va = v.accessor<double, 4>();
  auto oa = got.accessor<double, 4>();
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) {
      const int g = h / (H / Hkv);
      double vn = 0, dot = 0;
      for (int d = 0; d < D; ++d) vn += va[0][t][g][d] * va[0][t][g][d];
      vn = std::sqrt(vn);
      for (int d = 0; d < D; ++d) dot += ya[0][t][h][d] * va[0][t][g][d] / vn;
      double out_dot_v = 0;
      for (int d = 0; d < D; ++d) {
        double want = ya[0][t][h][d] - dot * va[0][t][g][d] / vn;
        EXPECT_NEAR(oa[0][t][h][d], want, 1e-12);
        out_dot_v += oa[0][t][h][d] * va[0][t][g][d];
      }
      EXPECT_NEAR(out_dot_v, 0.0, 1e-10);  // the result is orthogonal to v
    }
}

TEST(Layers, ReluSquaredAndSoftcap) {
  at::Tensor x = at::tensor({-2.0, -0.5, 0.0, 0.5, 3.0}, at::kDouble);
  expect_close(relu_squared(x), at::tensor({0.0, 0.0, 0.0, 0.25, 9.0}, at::kDouble), 1e-15);
  at::Tensor big = at::tensor({-1000.0, 0.0, 15.0, 1000.0}, at::kDouble);
  at::Tensor c = softcap(big, 30.0);
  EXPECT_NEAR(c[0].item<double>(), -30.0, 1e-9);
  EXPECT_NEAR(c[2].item<double>(), 30.0 * std::tanh(0.5), 1e-12);
  EXPECT_NEAR(c[3].item<double>(), 30.0, 1e-9);
}
