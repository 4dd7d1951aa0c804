// The assembled GPT: names and shapes, parameter count, initialisation, the
// full forward pass against an independent re-implementation, gradients
// against finite differences, and fake quantisation.
#include <gtest/gtest.h>

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <set>

#include "helpers.h"
#include "pgolf/model/layers.h"
#include "pgolf/model/model.h"
#include "pgolf/export/quant.h"

using namespace pgolf;
using test::tokens;

namespace {

// QAT's forward value of a matrix by the slow quantiser: q * scale in float32.
at::Tensor qat_grid_value(const at::Tensor& w, const RowQuantizer& rq) {
  const test::SlowRows r = test::slow_quantize_rows(w.reshape({w.size(0), -1}), rq);
  return (r.q.to(at::kFloat) * r.scale.unsqueeze(1)).view(w.sizes()).to(at::kDouble);
}

Config tiny_config() {
  Config c;
  c.model.vocab_size = 64;
  c.model.num_layers = 5;  // 2 encoder, 3 decoder blocks: the last decoder block gets no skip
  c.model.model_dim = 16;
  c.model.num_heads = 4;
  c.model.num_kv_heads = 2;
  c.model.mlp_mult = 2;
  c.model.bigram_vocab_size = 32;
  c.model.bigram_dim = 8;
  c.model.xsa_last_n = 2;
  c.train.train_seq_len = 8;
  c.train.train_batch_tokens = 64;
  c.eval.eval_stride = 4;
  c.run.seed = 7;
  return c;
}

// ---- an independent forward pass, written from docs/MODEL.md ("The model") with plain ops ----
at::Tensor ref_norm(const at::Tensor& x) {
  return x / at::sqrt(x.pow(2).mean(-1, true) + std::numeric_limits<double>::epsilon());
}

// `order`: the block applications (default: each layer once, in order).
at::Tensor ref_forward_loss(const GPT& m, const at::Tensor& idx, const at::Tensor& tgt, std::vector<std::int64_t> order = {}) {
  const ModelConfig& c = m.config();
  auto P = [&](const std::string& n) { return m.param(n).detach(); };
  const std::int64_t B = idx.size(0), T = idx.size(1), D = c.model_dim, H = c.num_heads, Hkv = c.num_kv_heads,
                     hd = D / H, L = c.num_layers;
  at::Tensor x = P("tok_emb.weight").index_select(0, idx.reshape(-1)).view({B, T, D});
  // BigramHash
  at::Tensor bucket = at::empty({B, T}, at::kLong);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < T; ++t) {
      std::int64_t cur = idx[b][t].item<std::int64_t>(), prev = t ? idx[b][t - 1].item<std::int64_t>() : 0;
      bucket[b][t] = t == 0 ? c.bigram_vocab_size - 1 : ((36313 * cur) ^ (27191 * prev)) % (c.bigram_vocab_size - 1);
    }
  at::Tensor bg = P("bigram.embed.weight").index_select(0, bucket.reshape(-1)).view({B, T, -1});
  x = x + at::matmul(bg, P("bigram.proj.weight").t()) * P("bigram.scale");
  if (c.smear_bos_aware) {
    // Position by position: e_t += lambda * sigmoid(W_s . e_t[0:12]) * e_{t-1}, not into a BOS (id 1).
    const at::Tensor e = x.clone(), w = P("smear.w").view({-1});
    const double lambda = P("smear.lambda").item<double>();
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t t = 1; t < T; ++t)
        if (idx[b][t].item<std::int64_t>() != 1)
          x[b][t] += lambda * at::sigmoid((e[b][t].narrow(0, 0, 12) * w).sum()) * e[b][t - 1];
    x = ref_norm(x);
  } else {
    at::Tensor g = at::sigmoid(P("smear.gate"));
    auto smear = [&](const at::Tensor& z) {
      return (1 - g) * z + g * at::cat({at::zeros({B, 1, D}, at::kDouble), z.narrow(1, 0, T - 1)}, 1);
    };
    x = c.smear_before_norm ? ref_norm(smear(x)) : smear(ref_norm(x));
  }
  at::Tensor x0 = x;
  // RoPE over the first d dims; NTK: base * (T / built)^(d / (d - 2)) when T is longer.
  const std::int64_t d = c.rope_dims > 0 ? c.rope_dims : hd;
  double base = c.rope_base;
  if (c.rope_ntk_len > 0 && T > c.rope_ntk_len) base *= std::pow(double(T) / double(c.rope_ntk_len), double(d) / double(d - 2));
  at::Tensor mask = at::ones({T, T}, at::kBool).tril();
  std::vector<at::Tensor> stack;
  if (order.empty())
    for (std::int64_t i = 0; i < L; ++i) order.push_back(i);
  // Layer i's attention output (after its projection) and MLP output for the normed input n.
  auto attend = [&](std::int64_t i, const at::Tensor& n) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    at::Tensor q = at::matmul(n, P(p + "attn.c_q.weight").t()).view({B, T, H, hd});
    at::Tensor k = at::matmul(n, P(p + "attn.c_k.weight").t()).view({B, T, Hkv, hd});
    at::Tensor v = at::matmul(n, P(p + "attn.c_v.weight").t()).view({B, T, Hkv, hd});
    q = ref_norm(q);
    k = ref_norm(k);
    at::Tensor pos = at::arange(T, at::kDouble).view({T, 1, 1});
    at::Tensor inv = at::pow(base, -2.0 * at::arange(d / 2, at::kDouble) / d);
    at::Tensor cs = at::cos(pos * inv), sn = at::sin(pos * inv);
    auto rope = [&](const at::Tensor& z) {
      at::Tensor z1 = z.narrow(-1, 0, d / 2), z2 = z.narrow(-1, d / 2, d / 2);
      return at::cat({z1 * cs + z2 * sn, -z1 * sn + z2 * cs, z.narrow(-1, d, hd - d)}, -1);
    };
    q = rope(q) * P(p + "attn.q_gain").view({1, 1, H, 1});
    k = rope(k);
    at::Tensor kr = k.repeat_interleave(H / Hkv, 2), vr = v.repeat_interleave(H / Hkv, 2);
    at::Tensor s = at::einsum("bihd,bjhd->bhij", {q, kr}) / std::sqrt(double(hd));
    s = s.masked_fill(~mask, -INFINITY).softmax(-1);
    at::Tensor y = at::einsum("bhij,bjhd->bihd", {s, vr});  // [B, T, H, hd]
    if (i >= L - c.xsa_last_n) {
      at::Tensor vh = vr / vr.norm(2, -1, true);
      y = y - (y * vh).sum(-1, true) * vh;
    }
    if (c.attn_out_gate)  // head h times sigmoid(0.5 * W_g[h] . n[0:12])
      y = y * at::sigmoid(0.5 * at::matmul(n.narrow(-1, 0, 12), P(p + "attn.out_gate").t())).unsqueeze(-1);
    return P(p + "attn_scale") * at::matmul(y.reshape({B, T, D}), P(p + "attn.proj.weight").t());
  };
  auto feed_forward = [&](std::int64_t i, const at::Tensor& n) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    at::Tensor z = at::matmul(n, P(p + "mlp.fc.weight").t());
    at::Tensor h = (c.mlp_activation == MlpActivation::LeakyRelu2 ? at::where(z > 0, z, c.mlp_leaky_slope * z) : z.clamp_min(0)).pow(2);
    return P(p + "mlp_scale") * at::matmul(h, P(p + "mlp.proj.weight").t());
  };
  const std::int64_t apps = static_cast<std::int64_t>(order.size()), enc = apps / 2;
  at::Tensor lane1;  // parallel residuals: x is lane 0
  for (std::int64_t j = 0; j < apps; ++j) {
    const std::int64_t i = order[j];  // the physical layer
    const std::string p = "blocks." + std::to_string(i) + ".";
    const bool parallel = c.parallel_resid_from >= 0 && i >= c.parallel_resid_from;
    if (parallel && !lane1.defined()) lane1 = x;
    if (j >= enc && !stack.empty()) {
      at::Tensor ws = P("skip_weights")[j - enc] * stack.back();
      if (c.skip_gates) {  // lerp(w*skip, x, sigmoid(g)) written out
        at::Tensor s = at::sigmoid(P("skip_gates")[j - enc]);
        x = (1 - s) * ws + s * x;
      } else {
        x = x + ws;
      }
      stack.pop_back();
    }
    at::Tensor mix = P(p + "resid_mix");
    const double ln = c.ln_scale ? 1.0 / std::sqrt(double(i + 1)) : 1.0;
    if (parallel) {  // both lanes read the old values
      at::Tensor A = attend(i, ref_norm(mix[0] * x + mix[1] * x0) * ln), M = feed_forward(i, ref_norm(lane1) * ln);
      at::Tensor Pm = P(p + "lane_mix"), r = P(p + "lane_decay");
      at::Tensor lane0 = r[0] * x + Pm[0][0] * A + Pm[1][0] * M;
      lane1 = r[1] * lane1 + Pm[0][1] * A + Pm[1][1] * M;
      x = lane0;
    } else {
      x = mix[0] * x + mix[1] * x0;
      x = x + attend(i, ref_norm(x) * ln);
      x = x + feed_forward(i, ref_norm(x) * ln);
    }
    if (j < enc) stack.push_back(x);
  }
  if (lane1.defined()) x = 0.5 * (x + lane1);
  at::Tensor logits = at::matmul(ref_norm(x), P("tok_emb.weight").t());
  logits = c.logit_softcap * at::tanh(logits / c.logit_softcap);
  at::Tensor logp = logits.log_softmax(-1).view({B * T, -1});
  return -logp.gather(1, tgt.reshape({-1, 1})).mean();
}

ModelOptions f64() { return {at::kCPU, at::kDouble, at::kDouble}; }

// The seed options of docs/PRESETS.md all on: head_dim 8 with partial RoPE on 4 dims,
// NTK-scaled from a built length of 4 (the tests run T = 8), layer-norm
// scale, RMSNorm before SmearGate.
Config options_config() {
  Config c = tiny_config();
  c.model.model_dim = 32;
  c.model.rope_dims = 4;
  c.model.rope_ntk_len = 4;
  c.model.ln_scale = true;
  c.model.smear_before_norm = false;
  return c;
}

}  // namespace

TEST(Model, ParameterNamesAndShapesFollowTheReference) {
  Config c = tiny_config();
  GPT m(c.model, {});
  std::map<std::string, std::vector<std::int64_t>> got;
  for (const auto& p : m.parameters()) got[p.name] = p.tensor.sizes().vec();
  std::map<std::string, std::vector<std::int64_t>> want = {
      {"tok_emb.weight", {64, 16}}, {"bigram.embed.weight", {32, 8}}, {"bigram.proj.weight", {16, 8}},
      {"bigram.scale", {}},         {"smear.gate", {16}},             {"skip_weights", {2, 16}}};
  for (int i = 0; i < 5; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    want[p + "attn.c_q.weight"] = {16, 16};
    want[p + "attn.c_k.weight"] = {8, 16};
    want[p + "attn.c_v.weight"] = {8, 16};
    want[p + "attn.proj.weight"] = {16, 16};
    want[p + "attn.q_gain"] = {4};
    want[p + "mlp.fc.weight"] = {32, 16};
    want[p + "mlp.proj.weight"] = {16, 32};
    want[p + "attn_scale"] = {16};
    want[p + "mlp_scale"] = {16};
    want[p + "resid_mix"] = {2, 16};
  }
  EXPECT_EQ(got, want);
}

TEST(Model, ParameterCountOfThe12LayerDefault) {
  Config c;  // 12L default
  GPT m(c.model, {});
  const std::int64_t V = 1024, D = 512, L = 12, kv = 256, hid = 1536, H = 8;
  const std::int64_t per_block = D * D + 2 * kv * D + D * D + H + 2 * hid * D + D + D + 2 * D;
  const std::int64_t want = V * D + 2048 * 96 + D * 96 + 1 + D + 6 * D + L * per_block;
  EXPECT_EQ(m.num_params(), want);
  EXPECT_NEAR(static_cast<double>(want), 29e6, 1.5e6);  // "about 29M" (docs/MODEL.md ("The model"))
}

TEST(Model, InitialisationFollowsSpec) {
  Config c = test::small_model(4, 128);
  c.model.bigram_dim = 64;
  GPT m(c.model, {});
  EXPECT_EQ(m.param("blocks.0.attn.proj.weight").abs().max().item<float>(), 0.0f);
  EXPECT_EQ(m.param("blocks.3.mlp.proj.weight").abs().max().item<float>(), 0.0f);
  EXPECT_EQ(m.param("bigram.embed.weight").abs().max().item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(m.param("bigram.scale").item<float>(), 0.05f);
  EXPECT_FLOAT_EQ(m.param("blocks.1.attn.q_gain")[1].item<float>(), 1.5f);
  EXPECT_TRUE(m.param("blocks.2.resid_mix")[0].eq(1).all().item<bool>());
  EXPECT_TRUE(m.param("blocks.2.resid_mix")[1].eq(0).all().item<bool>());
  // Orthogonal: W W^T = I for the wide c_k [64, 128], W^T W = I for the tall fc [512, 128].
  at::Tensor ck = m.param("blocks.0.attn.c_k.weight").detach();
  EXPECT_LT((at::matmul(ck, ck.t()) - at::eye(64)).abs().max().item<float>(), 1e-4);
  at::Tensor fc = m.param("blocks.0.mlp.fc.weight").detach();
  EXPECT_LT((at::matmul(fc.t(), fc) - at::eye(128)).abs().max().item<float>(), 1e-4);
  // bigram.proj [128, 64]: orthogonal, then scaled by 1/sqrt(2L).
  at::Tensor bp = m.param("bigram.proj.weight").detach();
  EXPECT_LT((at::matmul(bp.t(), bp) - at::eye(64) / 8.0).abs().max().item<float>(), 1e-4);
  double std = m.param("tok_emb.weight").std().item<double>();
  EXPECT_NEAR(std, 0.005, 0.0005);
  // Same seed, same weights; other seed, other weights.
  GPT same(c.model, {}), other(c.model, model_options_for(at::kCPU, /*seed=*/1));
  EXPECT_TRUE(at::equal(same.param("blocks.1.attn.c_q.weight"), m.param("blocks.1.attn.c_q.weight")));
  EXPECT_FALSE(at::equal(other.param("blocks.1.attn.c_q.weight"), m.param("blocks.1.attn.c_q.weight")));
}

TEST(Model, ForwardMatchesIndependentReimplementation) {
  GPT m(tiny_config().model, f64());
  test::randomise(m, 11);
  at::Tensor idx = tokens(2, 8, 64, 12), tgt = tokens(2, 8, 64, 13);
  double got = m.loss(idx, tgt).item<double>();
  double want = ref_forward_loss(m, idx, tgt).item<double>();
  EXPECT_NEAR(got, want, 1e-8);  // RoPE tables are float32, as in the reference
  // token_nll averages to the loss.
  EXPECT_NEAR(m.token_nll(idx, tgt).mean().item<double>(), got, 1e-12);
}

TEST(Model, SeedOptionsMatchIndependentReimplementation) {
  const Config all = options_config();
  std::vector<Config> variants(9, all);
  variants[1].model.rope_dims = 0;         // full RoPE, NTK-scaled
  variants[2].model.rope_ntk_len = 0;      // partial RoPE, plain base
  variants[3].model.ln_scale = false;
  variants[4].model.smear_before_norm = true;
  variants[5].model.mlp_activation = MlpActivation::LeakyRelu2;  // the 1.0611 record's MLP
  variants[5].model.mlp_leaky_slope = 0.5;
  variants[6].model.attn_out_gate = true;
  variants[7].model.smear_bos_aware = true;
  variants[8].model.parallel_resid_from = 3;  // decoder layers 3 and 4 of 5; layer 2 before them runs plain
  at::Tensor idx = tokens(2, 8, 64, 12), tgt = tokens(2, 8, 64, 13);
  idx[0][4] = 1;  // a BOS inside a row: the BOS-aware SmearGate must skip it
  std::set<double> losses;
  for (const Config& c : variants) {
    GPT m(c.model, f64());
    test::randomise(m, 11);
    const double got = m.loss(idx, tgt).item<double>();
    // RoPE tables are float32 (as in the reference): ~1e-8 of the loss, up to 1.04e-8 seen.
    EXPECT_NEAR(got, ref_forward_loss(m, idx, tgt).item<double>(), 3e-8)
        << "ROPE_DIMS=" << c.model.rope_dims << " ROPE_NTK_LEN=" << c.model.rope_ntk_len << " LN_SCALE=" << c.model.ln_scale
        << " SMEAR_BEFORE_NORM=" << c.model.smear_before_norm << " MLP_ACTIVATION=" << format_value(c.model.mlp_activation)
        << " ATTN_OUT_GATE=" << c.model.attn_out_gate << " SMEAR_BOS_AWARE=" << c.model.smear_bos_aware
        << " PARALLEL_RESID_FROM=" << c.model.parallel_resid_from;
    losses.insert(got);
  }
  EXPECT_EQ(losses.size(), variants.size());  // every option changes the result
}

// Depth recurrence and gated skips: 5 layers with 1-2 looped 3 times run
// 0,1,2,1,2,1,2,3,4 (written out here, not computed): the first 4
// applications push, the next 4 pop through skip slots 0..3. Off, the same
// model runs each layer once; the repeats share every weight.
TEST(Model, LoopedModelEqualsTheBlocksUnrolledByHand) {
  Config c = options_config();
  c.model.num_layers = 5;
  c.model.loop_layers = LoopRange{1, 2};
  c.model.loop_repeats = 3;
  for (bool gates : {false, true}) {
    c.model.skip_gates = gates;
    GPT m(c.model, f64());
    EXPECT_EQ(m.param("skip_weights").size(0), 4);  // the looped encoder's 4 applications
    test::randomise(m, 61);
    at::Tensor idx = tokens(2, 8, 64, 62), tgt = tokens(2, 8, 64, 63);
    const double plain = m.loss(idx, tgt).item<double>();
    EXPECT_NEAR(plain, ref_forward_loss(m, idx, tgt).item<double>(), 3e-8) << "gates " << gates;
    m.set_looped(true);
    const double looped = m.loss(idx, tgt).item<double>();
    EXPECT_NEAR(looped, ref_forward_loss(m, idx, tgt, {0, 1, 2, 1, 2, 1, 2, 3, 4}).item<double>(), 3e-8) << "gates " << gates;
    EXPECT_GT(std::abs(looped - plain), 1e-4);
  }
}

// The per-layer plan by hand: the 1.0611 record's 11 layers (XSA on every
// layer, output gates, parallel lanes from layer 8, LN_SCALE, layers 3-5 looped
// 3 times) and #389's (XSA on the last 5), and what the GPT builds from it.
TEST(Model, BlockPlansListEachLayersParts) {
  Config c = load_config({std::string(PGOLF_SOURCE_DIR) + "/configs/record_1_0611.env"}, {}, [](const char*) -> const char* { return nullptr; });
  const std::vector<BlockPlan> plans = block_plans(c.model);
  ASSERT_EQ(plans.size(), 11u);
  for (std::int64_t i = 0; i < 11; ++i) {
    const BlockPlan want{i, true, true, i >= 8, 1.0 / std::sqrt(double(i + 1)), i >= 3 && i <= 5 ? 3 : 1};
    EXPECT_EQ(plans[static_cast<std::size_t>(i)], want) << "layer " << i;
  }
  c = load_config({std::string(PGOLF_SOURCE_DIR) + "/configs/seed389_11l_int5all_xsa_ema.env"}, {}, [](const char*) -> const char* { return nullptr; });
  const std::vector<BlockPlan> seed = block_plans(c.model);
  for (const BlockPlan& b : seed) {
    EXPECT_EQ(b.xsa, b.layer >= 6) << b.layer;
    EXPECT_FALSE(b.out_gate || b.parallel || b.repeats != 1) << b.layer;
  }
  Config three = tiny_config();
  three.model.num_layers = 3;
  three.model.xsa_last_n = 2;
  three.model.ln_scale = true;
  three.model.parallel_resid_from = 2;
  three.model.loop_layers = LoopRange{2, 2};
  EXPECT_EQ(format_block_plans(block_plans(three.model)), "blocks:3 0 1+xsa*0.7071 2+xsa+parallel+loop3*0.5774");
  GPT m(three.model, {});
  EXPECT_EQ(m.plans(), block_plans(three.model));
  EXPECT_NO_THROW(m.param("blocks.2.lane_mix"));
  EXPECT_THROW(m.param("blocks.1.lane_mix"), std::out_of_range);
}

TEST(Model, QatFromTheStartEqualsTheModelWithDequantisedMatrices) {
  Config c = options_config();
  c.model.model_dim = 64;  // matrices above the 4,096-entry passthrough set below
  c.export_.quant_passthrough_numel = 4096;
  parse_value("int5,floor", c.qat.qat_quant);
  GPT m(c.model, f64()), deq(c.model, f64());
  test::use_qat_plan(m, c);
  test::randomise(m, 41);
  const QuantOptions o = quant_options(c.export_, c.qat);
  at::NoGradGuard no_grad;
  int quantised = 0;
  for (std::size_t i = 0; i < m.parameters().size(); ++i) {
    const auto& p = m.parameters()[i];
    at::Tensor w = p.tensor.detach();
    auto rq = qat_quantizer(p.name, o);
    if (rq) {
      w = qat_grid_value(w, *rq);
      ++quantised;
    }
    deq.parameters()[i].tensor.detach().copy_(w);
  }
  EXPECT_EQ(quantised, 5 * 6 + 1);  // every block matrix and bigram.proj
  at::Tensor idx = tokens(2, 8, 64, 42), tgt = tokens(2, 8, 64, 43);
  const double plain = m.loss(idx, tgt).item<double>();
  m.set_qat(true);
  EXPECT_NEAR(m.training_loss(idx, tgt).item<double>(), ref_forward_loss(deq, idx, tgt).item<double>(), 1e-8);
  // Only the training forward: evaluation sees the plain weights, QAT on or off.
  EXPECT_EQ(m.loss(idx, tgt).item<double>(), plain);
  EXPECT_GT(std::abs(m.training_loss(idx, tgt).item<double>() - plain), 1e-6);
}

TEST(Model, GradientsMatchFiniteDifferencesWithSeedAndRecordOptionsOn) {
  Config c = options_config();
  c.model.mlp_activation = MlpActivation::LeakyRelu2;  // both branches of its derivative occur
  c.model.attn_out_gate = true;
  c.model.smear_bos_aware = true;
  c.model.num_layers = 3;
  c.model.loop_layers = LoopRange{1, 1};  // looped: 0,1,1,2 with gated skips
  c.model.loop_repeats = 2;
  c.model.skip_gates = true;
  c.model.parallel_resid_from = 2;
  GPT m(c.model, f64());
  m.set_looped(true);
  test::randomise(m, 51);
  at::Tensor idx = tokens(2, 8, 64, 52), tgt = tokens(2, 8, 64, 53);
  idx[1][3] = 1;
  m.loss(idx, tgt).backward();
  const double h = 1e-6;
  for (const auto& p : m.parameters()) {
    at::Tensor flat = p.tensor.detach().view({-1});
    at::Tensor grad = p.tensor.grad().view({-1});
    const std::int64_t j = flat.numel() / 3;
    const double orig = flat[j].item<double>();
    flat[j] = orig + h;
    const double lp = m.loss(idx, tgt).item<double>();
    flat[j] = orig - h;
    const double lm = m.loss(idx, tgt).item<double>();
    flat[j] = orig;
    const double fd = (lp - lm) / (2 * h);
    EXPECT_NEAR(grad[j].item<double>(), fd, 1e-6 + 1e-5 * std::abs(fd)) << p.name << "[" << j << "]";
  }
}

TEST(Model, GradientsMatchFiniteDifferencesInFloat64) {
  GPT m(tiny_config().model, f64());
  test::randomise(m, 21);
  at::Tensor idx = tokens(2, 8, 64, 22), tgt = tokens(2, 8, 64, 23);
  at::Tensor loss = m.loss(idx, tgt);
  loss.backward();
  const double h = 1e-6;
  int checked = 0;
  for (const auto& p : m.parameters()) {
    at::Tensor flat = p.tensor.detach().view({-1});
    at::Tensor grad = p.tensor.grad().view({-1});
    // A few entries per tensor, spread over it.
    for (std::int64_t j : {std::int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
      double orig = flat[j].item<double>();
      flat[j] = orig + h;
      double lp = m.loss(idx, tgt).item<double>();
      flat[j] = orig - h;
      double lm = m.loss(idx, tgt).item<double>();
      flat[j] = orig;
      double fd = (lp - lm) / (2 * h), ad = grad[j].item<double>();
      EXPECT_NEAR(ad, fd, 1e-6 + 1e-5 * std::abs(fd)) << p.name << "[" << j << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * static_cast<int>(m.parameters().size()));
}

TEST(Model, QatForwardUsesDequantisedWeightsAndGradientPassesThrough) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor w = at::normal(0.0, 1.0, {6, 40}, gen, at::kFloat).requires_grad_(true);
  at::Tensor fq = fake_quantize_rows(w, RowQuantizer{5});
  EXPECT_TRUE(at::equal(fq.detach(), qat_grid_value(w.detach(), RowQuantizer{5}).to(at::kFloat)));
  (fq * 3.0).sum().backward();
  EXPECT_TRUE(at::allclose(w.grad(), at::full_like(w, 3.0)));

  // In the model, QAT changes the loss and still gives gradients to the matrices.
  Config c = tiny_config();
  c.model.bigram_vocab_size = 0;
  c.model.model_dim = 64;
  c.model.mlp_mult = 3;
  GPT m(c.model, f64());
  test::use_qat_plan(m, c);
  test::randomise(m, 31);
  at::Tensor idx = tokens(2, 8, 64, 32), tgt = tokens(2, 8, 64, 33);
  double plain = m.loss(idx, tgt).item<double>();
  m.set_qat(true);
  at::Tensor q = m.training_loss(idx, tgt);
  EXPECT_GT(std::abs(q.item<double>() - plain), 1e-6);
  q.backward();
  EXPECT_GT(m.param("blocks.0.mlp.fc.weight").grad().abs().sum().item<double>(), 0.0);
}

TEST(Model, ParameterGroupsFollowSpec) {
  GPT m(tiny_config().model, {});
  std::set<std::string> muon, emb, scalar;
  for (const auto& p : m.parameters()) {
    switch (param_group(p.name, p.tensor)) {
      case ParamGroup::Muon: muon.insert(p.name); break;
      case ParamGroup::Embedding: emb.insert(p.name); break;
      case ParamGroup::Scalar: scalar.insert(p.name); break;
    }
  }
  EXPECT_EQ(emb, (std::set<std::string>{"tok_emb.weight", "bigram.embed.weight"}));
  EXPECT_EQ(muon.size(), 5u * 6 + 1);  // 6 matrices per block + bigram.proj
  EXPECT_TRUE(muon.count("bigram.proj.weight"));
  EXPECT_TRUE(scalar.count("skip_weights"));
  EXPECT_TRUE(scalar.count("blocks.0.resid_mix"));  // 2-D but a control tensor
  EXPECT_TRUE(scalar.count("smear.gate"));
  EXPECT_TRUE(scalar.count("bigram.scale"));
  EXPECT_EQ(scalar.size(), 5u * 4 + 3);
}
