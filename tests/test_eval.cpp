#include <gtest/gtest.h>

#include <cmath>

#include "helpers.h"
#include "pgolf/eval.h"

using namespace pgolf;

namespace {

ByteLuts hand_luts() {
  ByteLuts l;
  l.base_bytes = {0, 1, 2, 3};
  l.has_leading_space = {false, false, true, true};
  l.is_boundary = {true, false, false, false};
  return l;
}

}  // namespace

TEST(Eval, UnigramBaselineByHand) {
  // counts {0,3,1,0}: p = (c+1)/(4+4); val targets 1, 2, 1 after token 0.
  const std::vector<std::uint16_t> val = {0, 1, 2, 1};
  double bits = -(2 * std::log2(4.0 / 8) + std::log2(2.0 / 8));
  double bytes = 1 + (2 + 1) + 1;  // token 2 after token 1 (not a boundary) gains its space byte
  EXPECT_NEAR(unigram_bpb({0, 3, 1, 0}, val, hand_luts()), bits / bytes, 1e-12);
}

TEST(Eval, DeviceLutsCountBytesAsSpec) {
  DeviceLuts d(hand_luts(), at::kCPU);
  at::Tensor prev = at::tensor({0, 1, 1, 0}, at::kLong), tgt = at::tensor({2, 2, 1, 3}, at::kLong);
  EXPECT_TRUE(at::equal(d.bytes(prev, tgt), at::tensor({2, 3, 1, 3}, at::kLong)));
}

TEST(Eval, StandardEvaluationMatchesPerWindowSumsAndSplitsAcrossRanks) {
  Config c = test::small_model(2, 16);
  c.vocab_size = 4;
  c.bigram_vocab_size = 0;
  c.train_seq_len = 4;
  c.train_batch_tokens = 32;
  c.eval_stride = 2;
  GPT model(c, {at::kCPU, at::kDouble, at::kDouble});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  for (const auto& p : model.parameters()) p.tensor.detach().normal_(0.0, 0.2, gen);
  at::Tensor val = at::randint(4, {7 * 4 + 1}, gen, at::kLong);
  DeviceLuts luts(hand_luts(), at::kCPU);

  EvalSums all = evaluate_standard(model, val, luts, 4, 3);
  double nll = 0, bytes = 0;
  for (int w = 0; w < 7; ++w) {
    at::Tensor x = val.narrow(0, w * 4, 4).view({1, 4}), y = val.narrow(0, w * 4 + 1, 4).view({1, 4});
    nll += model.loss(x, y).item<double>() * 4;
    bytes += luts.bytes(x, y).sum().item<double>();
  }
  EXPECT_NEAR(all.nll, nll, 1e-9);
  EXPECT_EQ(all.tokens, 28);
  EXPECT_EQ(all.bytes, bytes);
  EXPECT_NEAR(all.val_bpb(), nll / std::log(2.0) / bytes, 1e-12);

  EvalSums r0 = evaluate_standard(model, val, luts, 4, 2, 0, 2), r1 = evaluate_standard(model, val, luts, 4, 2, 1, 2);
  EXPECT_NEAR(r0.nll + r1.nll, all.nll, 1e-9);
  EXPECT_EQ(r0.tokens + r1.tokens, all.tokens);
  EXPECT_EQ(r0.bytes + r1.bytes, all.bytes);
  EXPECT_EQ(r0.tokens, 12);  // windows [0, 3) and [3, 7)
}
