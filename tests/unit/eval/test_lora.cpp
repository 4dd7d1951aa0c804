// The per-document LoRA adapters of test-time training against a plain batched matmul.
#include <gtest/gtest.h>

#include "helpers.h"
#include "ttt_model.h"
#include "pgolf/data/data.h"
#include "pgolf/eval/lora.h"
#include "pgolf/eval/ttt.h"

using namespace pgolf;

using test::float64_model;
using test::kVocab;
using test::tiny;

// delta(x) for each document alone, in float64 from the formula.
TEST(Lora, BatchedDeltaEqualsEachDocumentsOwnLowRankMap) {
  const Config c = tiny();
  auto m = float64_model(c, 3);
  BatchedLora lora(*m, {AdapterSite::K, AdapterSite::Head}, 4, 8.0, 5, 11);
  EXPECT_EQ(lora.parameters().size(), 2u * 2 + 2);  // K in each of 2 layers, and the head
  EXPECT_FALSE(lora.delta(AdapterSite::Q, 0, at::zeros({2, 3, 16}, at::kDouble)).defined());
  // B = 0 at init: no change; A within U(+-1/sqrt(in)).
  const at::Tensor x = test::gaussian({3, 4, 16}, 5, at::kDouble);
  EXPECT_EQ(lora.delta(AdapterSite::K, 1, x).abs().max().item<double>(), 0.0);
  for (std::size_t i = 0; i < lora.parameters().size(); i += 2)
    EXPECT_LE(lora.parameters()[i].abs().max().item<double>(), 0.25 + 1e-12);
  {
    at::NoGradGuard g;
    for (std::size_t i = 1; i < lora.parameters().size(); i += 2) lora.parameters()[i].normal_();
  }
  const at::Tensor d = lora.delta(AdapterSite::Head, -1, x);  // the first 3 of 5 documents
  ASSERT_EQ(d.sizes(), (at::IntArrayRef{3, 4, kVocab}));
  const at::Tensor A = lora.parameters()[4], B = lora.parameters()[5];
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t t = 0; t < 4; ++t)
      for (std::int64_t o = 0; o < kVocab; ++o) {
        double want = 0;
        for (std::int64_t r = 0; r < 4; ++r) {
          double ax = 0;
          for (std::int64_t k = 0; k < 16; ++k) ax += A[i][r][k].item<double>() * x[i][t][k].item<double>();
          want += B[i][o][r].item<double>() * ax;
        }
        EXPECT_NEAR(d[i][t][o].item<double>(), 2.0 * want, 1e-10);
      }
}

// d(loss)/d(A), d(loss)/d(B) through the whole model against central differences.
TEST(Lora, GradientsMatchFiniteDifferences) {
  const Config c = tiny();
  auto m = float64_model(c, 4);
  BatchedLora lora(*m, TttConfig{}.ttt_targets, 2, 3.0, 2, 9);
  {
    at::NoGradGuard g;
    for (std::size_t i = 1; i < lora.parameters().size(); i += 2) lora.parameters()[i].normal_(0.0, 0.3);
  }
  m->set_adapter(lora.adapter());
  const at::Tensor x = test::tokens(2, 6, kVocab, 1), y = test::tokens(2, 6, kVocab, 2);
  auto loss = [&] { return m->token_nll(x, y).sum(); };
  loss().backward();
  for (std::size_t i = 0; i < lora.parameters().size(); i += 3) {
    const at::Tensor p = lora.parameters()[i];
    const at::Tensor flat = p.detach().view({-1});
    for (std::int64_t k : {std::int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
      const double fd = test::central_difference(loss, flat, k), ad = p.grad().view({-1})[k].item<double>();
      EXPECT_NEAR(ad, fd, 1e-6 * std::max(1.0, std::abs(fd))) << "factor " << i << " element " << k;
    }
  }
  m->set_adapter({});
}

