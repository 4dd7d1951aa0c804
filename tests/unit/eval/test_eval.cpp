#include <gtest/gtest.h>

#include <cmath>

#include "helpers.h"
#include "pgolf/data/data.h"
#include "pgolf/eval/eval.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

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
  EXPECT_NEAR(unigram_bpb({0, 3, 1, 0}, val, lut_target_bytes(val, hand_luts())), bits / bytes, 1e-12);
}

TEST(Eval, TableTargetBytesCountAsSpec) {
  // targets 2 after 0 (boundary: no space byte), 2 after 2, 1 after 2, 3 after 1
  EXPECT_EQ(lut_target_bytes({0, 2, 2, 1, 3}, hand_luts()), (std::vector<std::int32_t>{0, 2, 3, 1, 4}));
}

TEST(Eval, StandardEvaluationMatchesPerWindowSumsAndSplitsAcrossRanks) {
  Config c = test::small_model(2, 16);
  c.model.vocab_size = 4;
  c.model.bigram_vocab_size = 0;
  c.train.train_seq_len = 4;
  c.train.train_batch_tokens = 32;
  c.eval.eval_stride = 2;
  GPT model(c.model, {at::kCPU, at::kDouble, at::kDouble});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  for (const auto& p : model.parameters()) p.tensor.detach().normal_(0.0, 0.2, gen);
  at::Tensor val = at::randint(4, {7 * 4 + 1}, gen, at::kLong);
  const ByteLuts luts = hand_luts();
  const at::Tensor val_bytes = test::lut_bytes(val, luts);

  EvalSums all = evaluate_standard(model, val, val_bytes, 4, 3);
  double nll = 0, bytes = 0;
  for (int w = 0; w < 7; ++w) {
    at::Tensor x = val.narrow(0, w * 4, 4).view({1, 4}), y = val.narrow(0, w * 4 + 1, 4).view({1, 4});
    nll += model.loss(x, y).item<double>() * 4;
    for (int i = 0; i < 4; ++i)
      bytes += static_cast<double>(luts.token_bytes(static_cast<int>(x[0][i].item<std::int64_t>()),
                                                    static_cast<int>(y[0][i].item<std::int64_t>())));
  }
  EXPECT_NEAR(all.nll, nll, 1e-9);
  EXPECT_EQ(all.tokens, 28);
  EXPECT_EQ(all.bytes, bytes);
  EXPECT_NEAR(all.val_bpb(), nll / std::log(2.0) / bytes, 1e-12);

  EvalSums r0 = evaluate_standard(model, val, val_bytes, 4, 2, 0, 2),
           r1 = evaluate_standard(model, val, val_bytes, 4, 2, 1, 2);
  EXPECT_NEAR(r0.nll + r1.nll, all.nll, 1e-9);
  EXPECT_EQ(r0.tokens + r1.tokens, all.tokens);
  EXPECT_EQ(r0.bytes + r1.bytes, all.bytes);
  EXPECT_EQ(r0.tokens, 12);  // windows [0, 3) and [3, 7)
}

// A score that is not finite (NaN weights, a diverged run) is an error where
// the sums reach the host, naming the evaluation, not a printed val_bpb:nan.
TEST(Eval, NonFiniteScoresAreErrors) {
  Dist single;
  auto error_of = [&](const EvalSums& e) {
    try {
      all_reduce(e, single, at::kCPU, "final_fp32_sliding");
    } catch (const std::runtime_error& err) {
      return std::string(err.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of({NAN, 10, 20}).find("final_fp32_sliding: val_loss:nan val_bpb:nan is not finite"), std::string::npos);
  EXPECT_NE(error_of({INFINITY, 10, 20}).find("val_loss:inf"), std::string::npos);
  EXPECT_NE(error_of({5, 10, 0}).find("val_bpb:inf is not finite (NLL sum 5 over 10 tokens and 0 bytes)"), std::string::npos);
  EXPECT_DOUBLE_EQ(all_reduce({5, 10, 20}, single, at::kCPU).val_loss(), 0.5);
}

