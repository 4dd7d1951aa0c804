// The per-row quantiser family against a slow per-element computation, plan
// syntax, the scheme rules, pruning.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "helpers.h"
#include "pgolf/export/artifact.h"
#include "pgolf/export/quant.h"

using namespace pgolf;
using test::gaussian;

namespace {

// The export's format of the slow computation: the float32 scales stored as fp16.
RowQuantized slow_quantize(const at::Tensor& w, const RowQuantizer& rq) {
  const test::SlowRows r = test::slow_quantize_rows(w, rq);
  return {r.q, r.scale.to(at::kHalf)};
}

// A preset of configs/, or the built-in defaults for "default".
Config preset(const std::string& name) {
  if (name == "default") return Config{};
  return load_config({std::string(PGOLF_SOURCE_DIR) + "/configs/" + name}, {}, [](const char*) -> const char* { return nullptr; });
}

}  // namespace

TEST(Quantizer, MatchesSlowPerElementComputationForEveryParameterCombination) {
  // Rows of very different scale: max |w_r| from ~0.003 (far below 1, where the
  // scale floor binds) to ~10 (above 1), one all-zero row, and an outlier.
  at::Tensor w = gaussian({12, 300}, 1) * at::logspace(-3, 0.5, 12).unsqueeze(1);
  w[5].zero_();
  w[7][3] = 40.0f;
  int combos = 0;
  for (int bits : {4, 5, 6, 8})
    for (double clip : {1.0, 0.9999984, 0.99, -3.0, -12.85})  // negative: SDClip with k = -clip
      for (bool floor : {false, true})
        for (bool sym : {false, true}) {
          const RowQuantizer rq{bits, clip > 0 ? clip : 1.0, floor, sym, clip > 0 ? 0.0 : -clip};
          RowQuantized got = quantize_rows(w, rq), want = slow_quantize(w, rq);
          const std::string what = format_tensor_plan({Scheme::IntRow, rq});
          EXPECT_TRUE(at::equal(got.scale, want.scale)) << what;
          EXPECT_TRUE(at::equal(got.q, want.q)) << what;
          EXPECT_GE(got.q.min().item<int>(), rq.lo()) << what;
          EXPECT_LE(got.q.max().item<int>(), rq.qmax()) << what;
          ++combos;
        }
  EXPECT_EQ(combos, 80);
}

TEST(Quantizer, FloorCoarsensOnlyRowsBelowOneAndZeroRowsStayFinite) {
  at::Tensor w = at::stack({at::linspace(-0.2, 0.2, 64), at::linspace(-3.0, 3.0, 64), at::zeros({64})});
  const RowQuantizer plain{5, 1.0, false, false}, floored{5, 1.0, true, false};
  RowQuantized a = quantize_rows(w, plain), b = quantize_rows(w, floored);
  EXPECT_FLOAT_EQ(a.scale[0].item<float>(), static_cast<float>(c10::Half(0.2f / 15)));
  EXPECT_FLOAT_EQ(b.scale[0].item<float>(), static_cast<float>(c10::Half(1.0f / 15)));  // the floor binds
  EXPECT_EQ(b.q[0].abs().max().item<int>(), 3);                                        // round(0.2 * 15)
  EXPECT_FLOAT_EQ(a.scale[1].item<float>(), b.scale[1].item<float>());                   // max 3 > 1: no effect
  EXPECT_EQ(a.scale[2].item<float>(), 0.0f);  // zero row: fp16(1e-12) is 0, and so is every q
  EXPECT_TRUE(dequantize_rows(a)[2].eq(0).all().item<bool>());
  // Inside the clip the decoded error is at most half a float32 step plus |q|
  // times the fp16 rounding of the scale.
  const at::Tensor s32 = test::slow_quantize_rows(w, plain).scale.unsqueeze(1);
  const at::Tensor s16 = a.scale.to(at::kFloat).unsqueeze(1);
  const at::Tensor bound = s32 * 0.5 + a.q.to(at::kFloat).abs() * (s16 - s32).abs() + 1e-6;
  EXPECT_TRUE(((dequantize_rows(a) - w).abs() <= bound).all().item<bool>());
}

// The seeds divide by the float32 scale and store it as fp16. At the int6
// floor the float32 scale is 1/31 = 0.03225806 and its fp16 is 0.03225708, so
// values just below a rounding midpoint of the float32 grid are above the
// midpoint of the fp16 one: rounding against the fp16 scale would move each
// of them one step.
TEST(Quantizer, ExportRoundsAgainstTheFloat32ScaleAndStoresItAsFp16) {
  const float s32 = 1.0f / 31.0f, s16 = static_cast<float>(c10::Half(s32));
  ASSERT_NE(s32, s16);
  std::vector<float> row;
  for (int k = 0; k < 30; ++k) {
    const float mid32 = (static_cast<float>(k) + 0.5f) * s32, mid16 = (static_cast<float>(k) + 0.5f) * s16;
    const float v = 0.5f * (mid32 + mid16);  // between the two midpoints
    row.push_back(k % 2 == 0 ? v : -v);
  }
  const at::Tensor w = at::tensor(row).unsqueeze(0);
  const RowQuantizer rq{6, 1.0, true, false};  // max |w| < 1: the floor 1/31 binds
  const RowQuantized got = quantize_rows(w, rq);
  EXPECT_EQ(got.scale[0].item<float>(), s16);
  int moved = 0;
  for (std::size_t i = 0; i < row.size(); ++i) {
    const float by32 = std::nearbyint(row[i] / s32), by16 = std::nearbyint(row[i] / s16);
    EXPECT_EQ(got.q[0][static_cast<std::int64_t>(i)].item<int>(), static_cast<int>(by32)) << "entry " << i;
    moved += by32 != by16;
  }
  EXPECT_GT(moved, 20);  // the row does tell the two roundings apart
}

// QAT's forward value is q * scale with the float32 scale, never rounded to
// fp16 (1/31, not 0.03225708).
TEST(Quantizer, QatScaleIsFloat32) {
  const at::Tensor w = at::linspace(-0.9, 0.9, 61).unsqueeze(0);
  const RowQuantizer rq{6, 1.0, true, false};
  const at::Tensor fq = fake_quantize_rows(w, rq);
  const test::SlowRows slow = test::slow_quantize_rows(w, rq);
  EXPECT_EQ(slow.scale[0].item<float>(), 1.0f / 31.0f);
  EXPECT_TRUE(at::equal(fq, slow.q.to(at::kFloat) * (1.0f / 31.0f)));
  EXPECT_FALSE(at::equal(fq, slow.q.to(at::kFloat) * static_cast<float>(c10::Half(1.0f / 31.0f))));
}

TEST(Quantizer, FakeQuantisationIsTheDequantisedValueWithStraightThroughGradient) {
  at::Tensor w = gaussian({6, 40}, 3).requires_grad_(true);
  const RowQuantizer rq{6, 1.0, true, false};
  at::Tensor fq = fake_quantize_rows(w, rq);
  const test::SlowRows slow = test::slow_quantize_rows(w.detach(), rq);
  EXPECT_TRUE(at::equal(fq.detach(), slow.q.to(at::kFloat) * slow.scale.unsqueeze(1)));
  (fq * 3.0).sum().backward();
  EXPECT_TRUE(at::allclose(w.grad(), at::full_like(w, 3.0)));
}

TEST(QuantPlan, TextRoundTripsAndErrorsNameTheKey) {
  for (const char* s : {"fp16", "fp32", "int5", "int6,floor", "int8,q=0.9999984,floor,sym", "int2,sym", "int6,k=12.85,sym"})
    EXPECT_EQ(format_tensor_plan(parse_tensor_plan(s)), s);
  const TensorPlan p = parse_tensor_plan("int6,sym,q=0.5,floor");
  EXPECT_EQ(p.quant, (RowQuantizer{6, 0.5, true, true}));
  // A bad plan is refused when the key is set, naming the key, the text and the fault.
  for (const char* bad : {"", "int9", "int1", "int", "fp8", "int6,flor", "int6,q=0", "int6,q=1.5", "int6,q=", "fp16,sym", "int6,k=0", "int6,k=x"}) {
    Config c;
    try {
      apply_assignment(c, std::string("QUANT_MLP=") + bad, "--set");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("QUANT_MLP='" + std::string(bad) + "'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("expected fp16, fp32 or int<2..8>"), std::string::npos) << e.what();
    }
  }
  Config c;
  EXPECT_THROW(apply_assignment(c, "QAT_QUANT=fp16", "--set"), ConfigError);
}

// docs/PRESETS.md, table-driven: the stored scheme of each tensor of each seed
// system, and what QAT fake-quantises where QAT is on.
struct SeedCase {
  const char* preset;
  std::int64_t model_params;  // docs/PRESETS.md (0: no published count)
  std::vector<std::pair<const char*, const char*>> plans;
  std::vector<std::pair<const char*, const char*>> qat;  // "" = not fake-quantised
};

void PrintTo(const SeedCase& s, std::ostream* os) { *os << s.preset; }

class SeedPreset : public ::testing::TestWithParam<SeedCase> {};

TEST_P(SeedPreset, ParamsSchemesQatAndExactRoundTrip) {
  const SeedCase& s = GetParam();
  const Config cfg = preset(s.preset);
  GPT model(cfg.model, {});
  if (s.model_params > 0) {
    EXPECT_EQ(model.num_params(), s.model_params);
  }
  const QuantOptions opts = quant_options(cfg.export_, cfg.qat);
  for (const auto& [name, plan] : s.plans)
    EXPECT_EQ(format_tensor_plan(plan_tensor(name, model.param(name), opts)), plan) << name;
  for (const auto& [name, q] : s.qat) {
    auto rq = qat_quantizer(name, opts);
    EXPECT_EQ(rq ? format_tensor_plan({Scheme::IntRow, *rq}) : "", q) << name;
  }
  // Small random weights: every tensor decodes to exactly what the quantiser produced.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  for (const auto& p : model.parameters())
    if (p.tensor.dim() == 2) p.tensor.detach().copy_(at::normal(0.0, 0.02, p.tensor.sizes(), gen, at::kFloat));
  const auto q = quantize_tensors(model.parameters(), opts);
  const auto back = deserialize_tensors(serialize_tensors(q), "memory");
  ASSERT_EQ(back.size(), q.size());
  for (std::size_t i = 0; i < q.size(); ++i) {
    EXPECT_EQ(back[i].plan, q[i].plan) << q[i].name;
    EXPECT_TRUE(at::equal(dequantize(back[i]), dequantize(q[i]))) << q[i].name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Spec8, SeedPreset,
    ::testing::Values(
        SeedCase{"seed76_12l.env",
                 29109857,
                 {{"blocks.0.mlp.fc.weight", "int6,q=0.9999984,floor,sym"},
                  {"blocks.11.mlp.proj.weight", "int6,q=0.9999984,floor,sym"},
                  {"blocks.3.attn.c_k.weight", "int6,q=0.9999984,floor,sym"},
                  {"tok_emb.weight", "fp16"},
                  {"bigram.embed.weight", "int6,q=0.9999984,floor,sym"},
                  {"bigram.proj.weight", "fp16"},
                  {"blocks.0.attn_scale", "fp32"},
                  {"blocks.0.resid_mix", "fp32"},
                  {"blocks.0.attn.q_gain", "fp32"},
                  {"skip_weights", "fp32"},
                  {"smear.gate", "fp32"},
                  {"bigram.scale", "fp32"}},
                 {}},
        SeedCase{"seed219_12l_int5_int6.env",
                 29191777,
                 {{"blocks.0.mlp.fc.weight", "int5,floor"},
                  {"blocks.5.attn.c_q.weight", "int6,floor"},
                  {"blocks.5.attn.proj.weight", "int6,floor"},
                  {"tok_emb.weight", "int8,q=0.9999984,floor,sym"},
                  {"bigram.embed.weight", "int8,q=0.9999984,floor,sym"},
                  {"bigram.proj.weight", "fp16"},
                  {"blocks.0.resid_mix", "fp16"},
                  {"skip_weights", "fp16"},
                  {"bigram.scale", "fp16"}},
                 {{"blocks.0.mlp.fc.weight", "int6,floor"},
                  {"blocks.0.attn.c_v.weight", "int6,floor"},
                  {"bigram.proj.weight", "int6,floor"},
                  {"tok_emb.weight", ""},
                  {"bigram.embed.weight", ""},
                  {"blocks.0.attn.q_gain", ""}}},
        SeedCase{"seed286_10l_late_qat.env",
                 24730705,
                 {{"blocks.0.mlp.fc.weight", "int5"},
                  {"blocks.8.attn.c_k.weight", "int6"},
                  {"blocks.9.attn.c_k.weight", "fp16"},
                  {"blocks.9.attn.c_q.weight", "int6"},
                  {"tok_emb.weight", "fp16"},
                  {"bigram.embed.weight", "int8,q=0.9999984,floor,sym"},
                  {"bigram.proj.weight", "fp16"},
                  {"blocks.0.mlp_scale", "fp16"}},
                 {{"blocks.0.mlp.proj.weight", "int5"},
                  {"blocks.9.attn.c_k.weight", "int6"},
                  {"bigram.proj.weight", ""},
                  {"tok_emb.weight", ""}}},
        SeedCase{"seed389_11l_int5all_xsa_ema.env",
                 27092057,
                 {{"blocks.0.mlp.fc.weight", "int5,floor"},
                  {"blocks.10.attn.c_q.weight", "int5,floor"},
                  {"tok_emb.weight", "int8,floor"},
                  {"bigram.embed.weight", "int8,floor"},
                  {"bigram.proj.weight", "fp16"},
                  {"smear.gate", "fp16"}},
                 {}},
        SeedCase{"default",
                 29109857,
                 {{"blocks.0.mlp.fc.weight", "int5,floor"},
                  {"blocks.0.attn.c_q.weight", "int6,floor"},
                  {"tok_emb.weight", "fp16"},
                  {"bigram.embed.weight", "int6,floor"},
                  {"bigram.proj.weight", "fp16"},
                  {"skip_weights", "fp32"}},
                 {}},
        SeedCase{"10l_int5mlp_bigram10240.env",
                 0,
                 {{"blocks.0.mlp.fc.weight", "int5"},
                  {"blocks.8.attn.c_k.weight", "fp16"},
                  {"blocks.7.attn.c_k.weight", "int6"},
                  {"bigram.embed.weight", "int6"},
                  {"bigram.proj.weight", "int6"},
                  {"tok_emb.weight", "fp16"},
                  {"smear.gate", "fp32"}},
                 {}}),
    [](const ::testing::TestParamInfo<SeedCase>& info) {
      std::string n = info.param.preset;
      n = n.substr(0, n.find(".env"));
      for (auto& ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

// The 1.0611 record's preset: every piece this project has is on. The
// record reports 35,945,671 parameters; pgolf builds 48 fewer, the
// parallel-residual scalars (P [2,2] and r [2]) that the record also creates
// in its 8 layers without parallel lanes, where they never train. Its
// matrices get the record's GPTQ + SDClip plans; looped, the model runs
// 17 block applications and still gives a finite loss.
TEST(RecordPreset, ParametersPlansAndLoopedForward) {
  const Config cfg = preset("record_1_0611.env");
  GPT model(cfg.model, {});
  EXPECT_EQ(model.num_params(), 35945671 - 8 * 6);
  EXPECT_EQ(model.param("skip_weights").size(0), 8);
  EXPECT_EQ(model.param("skip_gates").size(0), 8);
  EXPECT_EQ(model.param("blocks.8.lane_mix").sizes(), at::IntArrayRef({2, 2}));
  EXPECT_THROW(model.param("blocks.7.lane_mix"), std::out_of_range);
  EXPECT_EQ(model.param("blocks.0.attn.out_gate").sizes(), at::IntArrayRef({8, 12}));
  EXPECT_EQ(model.param("smear.w").sizes(), at::IntArrayRef({1, 12}));
  const QuantOptions opts = quant_options(cfg.export_, cfg.qat);
  EXPECT_EQ(format_tensor_plan(plan_tensor("blocks.0.attn.c_q.weight", model.param("blocks.0.attn.c_q.weight"), opts)),
            "int6,k=13,sym,gptq");
  EXPECT_EQ(format_tensor_plan(plan_tensor("blocks.0.mlp.fc.weight", model.param("blocks.0.mlp.fc.weight"), opts)),
            "int6,k=11.5,sym,gptq");
  EXPECT_EQ(format_tensor_plan(plan_tensor("tok_emb.weight", model.param("tok_emb.weight"), opts)), "int7,k=14,sym,gptq");
  at::NoGradGuard no_grad;
  model.set_looped(true);
  const at::Tensor idx = at::randint(cfg.model.vocab_size, {1, 16}, at::kLong);
  EXPECT_TRUE(std::isfinite(model.loss(idx, idx).item<double>()));
}

TEST(QuantPlan, RuleOrderForSyntheticNames) {
  QuantOptions o = quant_options(ExportConfig{}, QatConfig{});
  auto plan = [&](const std::string& name, at::IntArrayRef shape) { return format_tensor_plan(plan_tensor(name, at::zeros(shape), o)); };
  EXPECT_EQ(plan("blocks.0.resid_mix", {2, 8}), "fp32");         // control first
  EXPECT_EQ(plan("blocks.0.mlp.fc.weight", {16, 16}), "fp16");   // passthrough
  EXPECT_EQ(plan("lm_head.weight", {1024, 512}), "int8,q=0.9999984,floor,sym");  // no rule matches: other
  o.control_fp32_first = false;
  EXPECT_EQ(plan("blocks.0.resid_mix", {2, 8}), "fp16");
  EXPECT_EQ(plan("blocks.0.resid_mix", {2, 65536}), "fp32");  // large control tensors stay fp32
  o.fp16_patterns = {"blocks.3.", "mlp.proj"};
  EXPECT_EQ(plan("blocks.3.attn.c_q.weight", {512, 512}), "fp16");
  EXPECT_EQ(plan("blocks.2.mlp.proj.weight", {512, 1536}), "fp16");
  EXPECT_EQ(plan("blocks.2.mlp.fc.weight", {1536, 512}), "int5,floor");
  EXPECT_THROW(plan_tensor("ids", at::zeros({100000}, at::kLong), o), c10::Error);
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
  c.export_.quant_passthrough_numel = 8192;
  GPT m(c.model, {});
  auto q = quantize_tensors(m.parameters(), quant_options(c.export_, c.qat));
  ASSERT_EQ(q.size(), m.parameters().size());
  for (std::size_t i = 0; i < q.size(); ++i) {
    const auto& p = m.parameters()[i];
    at::Tensor back = dequantize(q[i]);
    EXPECT_EQ(back.sizes(), p.tensor.sizes()) << p.name;
    const Scheme s = q[i].plan.scheme;
    double tol = s == Scheme::Fp32 ? 0 : s == Scheme::Fp16 ? 1e-3 : 0.1;
    EXPECT_LE((back - p.tensor.detach()).abs().max().item<double>(), tol) << p.name;
  }
}
