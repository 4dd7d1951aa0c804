#include <gtest/gtest.h>

#include "helpers.h"
#include "pgolf/quant.h"

using namespace pgolf;

namespace {

at::Tensor gaussian(at::IntArrayRef shape, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::normal(0.0, 1.0, shape, gen, at::kFloat);
}

}  // namespace

TEST(Quant, IntRowValuesInRangeAndErrorAtMostHalfAStep) {
  at::Tensor w = gaussian({64, 200}, 1) * at::linspace(0.001, 3.0, 64).unsqueeze(1);  // rows of very different scale
  for (int bits : {5, 6}) {
    const int qmax = (1 << (bits - 1)) - 1;
    RowQuantized r = quantize_rows(w, bits);
    EXPECT_EQ(r.q.scalar_type(), at::kChar);
    EXPECT_EQ(r.scale.scalar_type(), at::kHalf);
    EXPECT_GE(r.q.min().item<int>(), -qmax - 1);
    EXPECT_LE(r.q.max().item<int>(), qmax);
    EXPECT_EQ(r.q.max().item<int>(), qmax);  // the largest |w| of a row maps to +-qmax
    at::Tensor step = r.scale.to(at::kFloat).unsqueeze(1);
    at::Tensor err = (dequantize_rows(r) - w).abs();
    // Half a step, plus the fp16 rounding of the scale (relative 2^-11) at qmax.
    EXPECT_TRUE((err <= step * 0.5 + step * qmax * 1e-3 + 1e-7).all().item<bool>()) << bits;
  }
  // int5 values fit in [-16, 15], int6 in [-32, 31].
  EXPECT_GE(quantize_rows(w * 100, 5).q.min().item<int>(), -16);
  EXPECT_GE(quantize_rows(w * 100, 6).q.min().item<int>(), -32);
}

TEST(Quant, ZeroRowsGetTheSmallestNormalScale) {
  RowQuantized r = quantize_rows(at::zeros({2, 8}), 5);
  EXPECT_FLOAT_EQ(r.scale[0].item<float>(), 6.103515625e-05f);
  EXPECT_TRUE(r.q.eq(0).all().item<bool>());
}

TEST(Quant, Int8ClippedFallback) {
  at::Tensor w = gaussian({4, 1000}, 2);
  w[1][5] = 1000.0f;  // an outlier beyond the 99.99984th percentile clip
  RowQuantized r = quantize_rows_int8_clipped(w);
  EXPECT_LE(r.q.abs().max().item<int>(), 127);
  EXPECT_GE(r.scale.to(at::kFloat).min().item<float>(), 1.0f / 127 - 1e-4);
  EXPECT_LT(dequantize_rows(r)[1][5].item<float>(), 1000.0f);  // clipped
}

TEST(Quant, PassthroughRulesPickTheRightSchemeForReferenceNames) {
  Config c;  // 12L default: int5 MLP, int6 attention/bigram, FP16_KEEP_NAME_PATTERNS=tok_emb
  auto plan = [&](const std::string& name, at::IntArrayRef shape) { return plan_tensor(name, at::zeros(shape), c); };
  EXPECT_EQ(plan("tok_emb.weight", {1024, 512}).scheme, Scheme::Fp16);
  TensorPlan mlp = plan("blocks.3.mlp.fc.weight", {1536, 512});
  EXPECT_EQ(mlp.scheme, Scheme::IntRow);
  EXPECT_EQ(mlp.bits, 5);
  EXPECT_EQ(plan("blocks.3.mlp.proj.weight", {512, 1536}).bits, 5);
  EXPECT_EQ(plan("blocks.0.attn.c_q.weight", {512, 512}).bits, 6);
  EXPECT_EQ(plan("blocks.0.attn.c_k.weight", {256, 512}).bits, 6);
  EXPECT_EQ(plan("bigram.embed.weight", {2048, 96}).bits, 6);
  EXPECT_EQ(plan("bigram.proj.weight", {512, 96}).bits, 6);
  EXPECT_EQ(plan("blocks.0.attn.q_gain", {8}).scheme, Scheme::Fp16);    // small: fp16 first
  EXPECT_EQ(plan("blocks.0.resid_mix", {2, 512}).scheme, Scheme::Fp16);  // 1,024 entries
  EXPECT_EQ(plan("skip_weights", {6, 512}).scheme, Scheme::Fp16);
  EXPECT_EQ(plan("blocks.0.resid_mix", {2, 8192}).scheme, Scheme::Fp32);  // large control tensor
  EXPECT_EQ(plan("lm_head.weight", {1024, 512}).scheme, Scheme::Int8Clip);  // no rule matches
  EXPECT_EQ(plan_tensor("ids", at::zeros({100000}, at::kLong), c).scheme, Scheme::Fp16);  // not float
  // The 10L record keeps one attention matrix fp16; int5-all quantises attention to 5 bits.
  c.fp16_keep_name_patterns = "tok_emb,blocks.8.attn.c_k";
  EXPECT_EQ(plan("blocks.8.attn.c_k.weight", {256, 512}).scheme, Scheme::Fp16);
  EXPECT_EQ(plan("blocks.7.attn.c_k.weight", {256, 512}).bits, 6);
  c.quant_attn_bits = 5;
  EXPECT_EQ(plan("blocks.7.attn.c_k.weight", {256, 512}).bits, 5);
}

TEST(Quant, PruningZeroesTheStatedFractionOfLargeMatrices) {
  std::vector<NamedTensor> params = {{"big", gaussian({300, 300}, 3)},  // 90,000 > 65,536 entries
                                     {"small", gaussian({200, 200}, 4)},
                                     {"vec", gaussian({100000}, 5)}};
  at::Tensor small_before = params[1].tensor.clone(), vec_before = params[2].tensor.clone();
  at::Tensor big_before = params[0].tensor.clone();
  std::int64_t zeroed = prune_small_weights(params, 0.03);
  const double frac = params[0].tensor.eq(0).sum().item<double>() / 90000.0;
  EXPECT_NEAR(frac, 0.03, 1e-4);
  EXPECT_EQ(zeroed, params[0].tensor.eq(0).sum().item<std::int64_t>());
  // The zeroed entries are the smallest ones.
  at::Tensor kept = big_before.abs().masked_select(params[0].tensor.ne(0));
  at::Tensor dropped = big_before.abs().masked_select(params[0].tensor.eq(0));
  EXPECT_LE(dropped.max().item<float>(), kept.min().item<float>());
  EXPECT_TRUE(at::equal(params[1].tensor, small_before));
  EXPECT_TRUE(at::equal(params[2].tensor, vec_before));
}

TEST(Quant, QuantizeAndDequantizeAModelsTensors) {
  Config c = test::small_model(2, 128);
  GPT m(c, {});
  auto q = quantize_tensors(m.parameters(), c);
  ASSERT_EQ(q.size(), m.parameters().size());
  for (std::size_t i = 0; i < q.size(); ++i) {
    const auto& p = m.parameters()[i];
    at::Tensor back = dequantize(q[i]);
    EXPECT_EQ(back.sizes(), p.tensor.sizes()) << p.name;
    double tol = q[i].scheme == Scheme::Fp32 ? 0 : q[i].scheme == Scheme::Fp16 ? 1e-3 : 0.1;
    EXPECT_LE((back - p.tensor.detach()).abs().max().item<double>(), tol) << p.name;
  }
}
