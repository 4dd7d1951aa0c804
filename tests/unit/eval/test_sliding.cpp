// Sliding-window evaluation against a slow target-by-target computation.
#include <gtest/gtest.h>

#include <cmath>

#include "helpers.h"
#include "pgolf/eval/eval.h"

using namespace pgolf;

namespace {

struct Fixture {
  Config cfg;
  std::unique_ptr<GPT> model;
  at::Tensor val;
  ByteLuts luts;
  Fixture(std::int64_t n_tokens) {
    cfg.model.vocab_size = 6;
    cfg.model.num_layers = 2;
    cfg.model.model_dim = 16;
    cfg.model.num_heads = 2;
    cfg.model.num_kv_heads = 1;
    cfg.model.bigram_vocab_size = 8;
    cfg.model.bigram_dim = 4;
    cfg.train.train_seq_len = 8;
    cfg.train.train_batch_tokens = 64;
    cfg.eval.eval_stride = 4;
    model = std::make_unique<GPT>(cfg.model, ModelOptions{at::kCPU, at::kDouble, at::kDouble});
    auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
    for (const auto& p : model->parameters()) p.tensor.detach().normal_(0.0, 0.3, gen);
    val = at::randint(6, {n_tokens}, gen, at::kLong);
    luts.base_bytes = {0, 1, 2, 3, 1, 2};
    luts.has_leading_space = {false, false, true, true, false, true};
    luts.is_boundary = {true, false, false, false, false, false};
  }
};

// Target t (1..T) is scored in window 0 if t <= L, else in the window
// k = ceil((t - L) / stride), ws = k*stride, with context val[ws .. t-1].
EvalSums slow_sliding(GPT& model, const at::Tensor& val, const ByteLuts& luts, std::int64_t L, std::int64_t stride,
                      std::vector<int>* scored) {
  const std::int64_t T = val.numel() - 1;
  EvalSums s;
  for (std::int64_t t = 1; t <= T; ++t) {
    const std::int64_t ws = t <= L ? 0 : (t - L + stride - 1) / stride * stride;
    at::Tensor x = val.narrow(0, ws, t - ws).unsqueeze(0), y = val.narrow(0, ws + 1, t - ws).unsqueeze(0);
    s.nll += model.token_nll(x, y)[0][t - ws - 1].item<double>();
    s.tokens += 1;
    s.bytes += static_cast<double>(luts.token_bytes(static_cast<int>(val[t - 1].item<std::int64_t>()),
                                                    static_cast<int>(val[t].item<std::int64_t>())));
    (*scored)[t] += 1;
  }
  return s;
}

}  // namespace

TEST(SlidingEval, WindowCount) {
  EXPECT_EQ(sliding_window_count(8, 8, 4), 1);
  EXPECT_EQ(sliding_window_count(9, 8, 4), 2);
  EXPECT_EQ(sliding_window_count(12, 8, 4), 2);
  EXPECT_EQ(sliding_window_count(13, 8, 4), 3);
  EXPECT_EQ(sliding_window_count(1000, 8, 8), 125);
}

TEST(SlidingEval, EqualsSlowDirectComputationAndScoresEveryTargetOnce) {
  for (std::int64_t n : {8, 9, 30, 37}) {  // total lengths that leave short last windows
    Fixture f(n);
    std::vector<int> scored(n, 0);
    EvalSums slow = slow_sliding(*f.model, f.val, f.luts, 8, 3, &scored);
    for (std::int64_t t = 1; t < n; ++t) EXPECT_EQ(scored[t], 1) << t;
    const at::Tensor d = test::lut_bytes(f.val, f.luts);
    for (std::int64_t batch : {1, 2, 5}) {
      EvalSums fast = evaluate_sliding(*f.model, f.val, d, 8, 3, batch);
      EXPECT_EQ(fast.tokens, n - 1) << n;  // every target exactly once
      EXPECT_EQ(fast.bytes, slow.bytes) << n;
      EXPECT_NEAR(fast.nll, slow.nll, 1e-9) << n << " batch " << batch;
    }
    // Split over 3 ranks, the sums add up to the same.
    EvalSums total;
    for (int r = 0; r < 3; ++r) {
      EvalSums part = evaluate_sliding(*f.model, f.val, d, 8, 3, 2, r, 3);
      total.nll += part.nll;
      total.tokens += part.tokens;
      total.bytes += part.bytes;
    }
    EXPECT_NEAR(total.nll, slow.nll, 1e-9);
    EXPECT_EQ(total.tokens, n - 1);
  }
}

TEST(SlidingEval, StrideEqualToSeqLenIsTheStandardEvaluation) {
  Fixture f(5 * 8 + 1);
  const at::Tensor d = test::lut_bytes(f.val, f.luts);
  EvalSums sliding = evaluate_sliding(*f.model, f.val, d, 8, 8, 2);
  EvalSums standard = evaluate_standard(*f.model, f.val, d, 8, 2);
  EXPECT_NEAR(sliding.nll, standard.nll, 1e-10);
  EXPECT_EQ(sliding.tokens, standard.tokens);
  EXPECT_EQ(sliding.bytes, standard.bytes);
  EXPECT_NEAR(sliding.val_bpb(), standard.val_bpb(), 1e-12);
}
