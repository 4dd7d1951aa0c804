#include "pgolf/model/model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <iomanip>
#include <sstream>

#include "pgolf/data/data.h"
#include "pgolf/kernels/fused.h"
#include "pgolf/model/layers.h"
#include "pgolf/export/quantizer.h"

namespace pgolf {

bool is_control_tensor(const std::string& name) {
  for (const char* p : {"attn_scale", "mlp_scale", "resid_mix", "q_gain", "out_gate", "lane_mix", "lane_decay", "skip_weight",
                        "skip_gates", "smear", "bigram.scale"})
    if (name.find(p) != std::string::npos) return true;
  return false;
}

ParamGroup param_group(const std::string& name, const at::Tensor& t) {
  if (name == "tok_emb.weight" || name == "bigram.embed.weight") return ParamGroup::Embedding;
  if (is_control_tensor(name)) return ParamGroup::Scalar;
  if (t.dim() == 2 && (name.rfind("blocks.", 0) == 0 || name == "bigram.proj.weight")) return ParamGroup::Muon;
  return ParamGroup::Scalar;
}

std::vector<BlockPlan> block_plans(const ModelConfig& cfg) {
  const std::int64_t first = cfg.loop_layers.first, last = cfg.loop_layers.on() ? cfg.loop_layers.last : -2;
  std::vector<BlockPlan> plans;
  for (std::int64_t i = 0; i < cfg.num_layers; ++i) {
    BlockPlan b;
    b.layer = i;
    b.xsa = i >= cfg.num_layers - cfg.xsa_last_n;
    b.out_gate = cfg.attn_out_gate;
    b.parallel = cfg.parallel_resid_from >= 0 && i >= cfg.parallel_resid_from;
    b.norm_scale = cfg.ln_scale ? 1.0 / std::sqrt(static_cast<double>(i + 1)) : 1.0;
    b.repeats = i >= first && i <= last ? cfg.loop_repeats : 1;
    plans.push_back(b);
  }
  return plans;
}

std::string format_block_plans(const std::vector<BlockPlan>& plans) {
  std::ostringstream out;
  out << "blocks:" << plans.size();
  for (const BlockPlan& b : plans) {
    out << ' ' << b.layer << (b.xsa ? "+xsa" : "") << (b.out_gate ? "+gate" : "") << (b.parallel ? "+parallel" : "");
    if (b.repeats > 1) out << "+loop" << b.repeats;
    if (b.norm_scale != 1.0) out << '*' << std::setprecision(4) << b.norm_scale;
  }
  return out.str();
}

namespace {

// What follows the embedding: the two orders of docs/PRESETS.md (smear_norm.h,
// the reference or the fused op), and the BOS-aware SmearGate of
// docs/PRESETS.md ("Options from the best record (1.0611)") (before the norm).
at::Tensor norm_then_smear(const at::Tensor& x, const at::Tensor&, const GPT::Smear& s) { return smear_norm(x, s.gate, false); }
at::Tensor smear_then_norm(const at::Tensor& x, const at::Tensor&, const GPT::Smear& s) { return smear_norm(x, s.gate, true); }
at::Tensor bos_smear_then_norm(const at::Tensor& x, const at::Tensor& ids, const GPT::Smear& s) {
  const auto dt = x.scalar_type();
  return rms_norm(bos_smear_gate(x, ids, s.w.to(dt), s.lambda.to(dt), kBosId));
}
at::Tensor fused_norm_then_smear(const at::Tensor& x, const at::Tensor&, const GPT::Smear& s) {
  return fused_smear_norm(x, s.gate, /*smear_first=*/false);
}
at::Tensor fused_smear_then_norm(const at::Tensor& x, const at::Tensor&, const GPT::Smear& s) {
  return fused_smear_norm(x, s.gate, /*smear_first=*/true);
}
// The configured order and kind; the BOS-aware gate has no fused kernel.
using EmbedNormFn = at::Tensor (*)(const at::Tensor& x, const at::Tensor& ids, const GPT::Smear& s);
EmbedNormFn pick_embed_norm(const ModelConfig& cfg, bool fused) {
  if (cfg.smear_bos_aware) return bos_smear_then_norm;
  if (cfg.smear_before_norm) return fused ? fused_smear_then_norm : smear_then_norm;
  return fused ? fused_norm_then_smear : norm_then_smear;
}

// RMSNorm times a block's LN_SCALE factor s (1: plain RMSNorm).
at::Tensor scaled_norm(const at::Tensor& t, double s) { return s == 1.0 ? rms_norm(t) : rms_norm(t) * s; }

// Orthogonal init (gain 1): QR of a Gaussian matrix, signs fixed by diag(R).
at::Tensor orthogonal(std::int64_t rows, std::int64_t cols, at::Generator& gen) {
  at::Tensor a = at::normal(0.0, 1.0, {rows, cols}, gen, at::kFloat);
  const bool wide = rows < cols;
  if (wide) a = a.t();
  auto [q, r] = at::linalg_qr(a);
  q = q * at::sign(at::diagonal(r));
  return wide ? q.t().contiguous() : q;
}

}  // namespace

GPT::GPT(const ModelConfig& cfg, ModelOptions opts) : cfg_(cfg), opts_(opts) {
  validate_model_config(cfg);
  const std::int64_t V = cfg.vocab_size, D = cfg.model_dim, L = cfg.num_layers, H = cfg.num_heads;
  const std::int64_t kv = cfg.num_kv_heads * cfg.head_dim(), hidden = cfg.mlp_mult * D;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(opts.seed);
  auto f32 = at::TensorOptions().dtype(at::kFloat);

  // Init (docs/MODEL.md ("The model")): matrices with both sides >= 64 orthogonal, and those named
  // *.proj then scaled by 1/sqrt(2L); smaller matrices keep the default
  // Linear init U(-1/sqrt(in), 1/sqrt(in)). Output projections start at zero.
  auto matrix = [&](std::int64_t out, std::int64_t in, bool is_proj) {
    if (out >= 64 && in >= 64) {
      at::Tensor w = orthogonal(out, in, gen);
      return is_proj ? w / std::sqrt(2.0 * static_cast<double>(L)) : w;
    }
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    return at::empty({out, in}, f32).uniform_(-bound, bound, gen);
  };

  tok_emb_ = add("tok_emb.weight", at::normal(0.0, cfg.tied_embed_init_std, {V, D}, gen, f32));
  if (cfg.bigram_vocab_size > 0) {
    bigram_embed_ = add("bigram.embed.weight", at::zeros({cfg.bigram_vocab_size, cfg.bigram_dim}, f32));
    bigram_proj_ = add("bigram.proj.weight", matrix(D, cfg.bigram_dim, true));
    bigram_scale_ = add("bigram.scale", at::full({}, 0.05, f32));
  }
  if (cfg.smear_bos_aware) {
    smear_.w = add("smear.w", at::zeros({1, kSmearGateDims}, f32));
    smear_.lambda = add("smear.lambda", at::zeros({}, f32));
  } else {
    smear_.gate = add("smear.gate", at::zeros({D}, f32));
  }
  // Block applications: each layer once, and with LOOP_LAYERS the looped
  // order; the skip slots are as many as the longer order's encoder needs.
  plain_order_ = block_order(L, {}, 1);
  if (cfg.loop_layers.on()) looped_order_ = block_order(L, cfg.loop_layers, cfg.loop_repeats);
  const auto n = static_cast<std::int64_t>(std::max(plain_order_.size(), looped_order_.size()));
  const std::int64_t slots = std::min(n / 2, n - n / 2);
  skip_weights_ = add("skip_weights", at::ones({slots, D}, f32));
  if (cfg.skip_gates) skip_gates_ = add("skip_gates", at::zeros({slots, D}, f32));
  skip_merge_ = cfg.skip_gates ? skip_lerp : skip_add;
  plans_ = block_plans(cfg);
  for (const BlockPlan& plan : plans_) {
    const std::string p = "blocks." + std::to_string(plan.layer) + ".";
    Block b;
    b.c_q = add(p + "attn.c_q.weight", matrix(D, D, false));
    b.c_k = add(p + "attn.c_k.weight", matrix(kv, D, false));
    b.c_v = add(p + "attn.c_v.weight", matrix(kv, D, false));
    b.proj = add(p + "attn.proj.weight", at::zeros({D, D}, f32));
    b.q_gain = add(p + "attn.q_gain", at::full({H}, cfg.qk_gain_init, f32));
    if (plan.out_gate) b.out_gate = add(p + "attn.out_gate", at::zeros({H, kAttnGateDims}, f32));
    b.fc = add(p + "mlp.fc.weight", matrix(hidden, D, false));
    b.mlp_proj = add(p + "mlp.proj.weight", at::zeros({D, hidden}, f32));
    b.attn_scale = add(p + "attn_scale", at::ones({D}, f32));
    b.mlp_scale = add(p + "mlp_scale", at::ones({D}, f32));
    b.resid_mix = add(p + "resid_mix", at::stack({at::ones({D}, f32), at::zeros({D}, f32)}));
    if (plan.parallel) {
      b.lane_mix = add(p + "lane_mix", at::ones({2, 2}, f32));
      b.lane_decay = add(p + "lane_decay", at::full({2}, 1.1, f32));
    }
    b.xsa = plan.xsa;
    b.layer = plan.layer;
    b.norm_scale = plan.norm_scale;
    blocks_.push_back(b);
  }
  fused_ = use_fused_kernels(opts.fused_kernels, opts.device);
  if (fused_) check_fused_kernels_run_on(opts.device);
  embed_norm_ = pick_embed_norm(cfg, fused_);
  const double slope = cfg.mlp_activation == MlpActivation::LeakyRelu2 ? cfg.mlp_leaky_slope : 0.0;
  qk_norm_rope_ = fused_ ? fused_qk_norm_rope : qk_norm_rope;
  residual_norm_ = fused_ ? fused_residual_norm : residual_norm;
  xsa_ = fused_ ? fused_xsa : xsa;
  if (fused_)
    activation_ = [slope](const at::Tensor& h) { return fused_leaky_relu2(h, slope); };
  else if (cfg.mlp_activation == MlpActivation::LeakyRelu2)
    activation_ = [slope](const at::Tensor& h) { return leaky_relu_squared(h, slope); };
  else
    activation_ = relu_squared;
}

void GPT::set_qat_quantizers(const std::map<std::string, RowQuantizer>& quantizers) {
  qat_quant_.clear();
  for (const auto& [name, rq] : quantizers) qat_quant_[param(name).unsafeGetTensorImpl()] = rq;
}

at::Tensor& GPT::add(const std::string& name, at::Tensor t) {
  t = t.to(opts_.device, opts_.param_dtype).contiguous().requires_grad_(true);
  params_.push_back({name, t});
  names_[t.unsafeGetTensorImpl()] = name;
  return params_.back().tensor;
}

const at::Tensor& GPT::param(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return p.tensor;
  throw std::out_of_range("model has no parameter '" + name + "'");
}

std::int64_t GPT::num_params() const {
  std::int64_t n = 0;
  for (const auto& p : params_) n += p.tensor.numel();
  return n;
}

at::Tensor GPT::weight(const at::Tensor& w) const {
  if (fake_quant_) {
    auto it = qat_quant_.find(w.unsafeGetTensorImpl());
    if (it != qat_quant_.end()) return fake_quantize_rows(w, it->second).to(opts_.compute_dtype);
  }
  return w.to(opts_.compute_dtype);
}

at::Tensor GPT::linear(const at::Tensor& x, const at::Tensor& w) const {
  if (observer_) observer_(names_.at(w.unsafeGetTensorImpl()), x);
  return cast_linear(x, weight(w));
}

at::Tensor GPT::adapted(const at::Tensor& y, AdapterSite site, std::int64_t layer, const at::Tensor& x) const {
  if (!adapter_) return y;
  const at::Tensor d = adapter_(site, layer, x);
  return d.defined() ? y + d.to(y.scalar_type()) : y;
}

at::Tensor GPT::attention(const Block& b, const at::Tensor& x) {
  const std::int64_t B = x.size(0), T = x.size(1), H = cfg_.num_heads, Hkv = cfg_.num_kv_heads, hd = cfg_.head_dim();
  at::Tensor q = adapted(linear(x, b.c_q), AdapterSite::Q, b.layer, x).view({B, T, H, hd});
  at::Tensor k = adapted(linear(x, b.c_k), AdapterSite::K, b.layer, x).view({B, T, Hkv, hd});
  at::Tensor v = adapted(linear(x, b.c_v), AdapterSite::V, b.layer, x).view({B, T, Hkv, hd}).transpose(1, 2);
  if (T != rope_len_) {
    const std::int64_t d = cfg_.rotated_dims();
    std::tie(rope_cos_, rope_sin_) = rope_tables(T, d, ntk_rope_base(cfg_.rope_base, T, cfg_.rope_ntk_len, d), x.device());
    rope_len_ = T;
  }
  q = qk_norm_rope_(q, rope_cos_, rope_sin_, b.q_gain).transpose(1, 2);  // [B, H, T, hd]
  k = qk_norm_rope_(k, rope_cos_, rope_sin_, at::Tensor()).transpose(1, 2);
  at::Tensor y = causal_attention(q, k, v).transpose(1, 2);  // [B, T, H, hd]
  if (b.xsa) y = xsa_(y, v.transpose(1, 2));
  if (b.out_gate.defined()) y = attn_output_gate(y, x, b.out_gate.to(x.scalar_type()));
  const at::Tensor flat = y.reshape({B, T, H * hd});
  return adapted(linear(flat, b.proj), AdapterSite::O, b.layer, flat);
}

// x = mix0*x + mix1*x0; x += attn_scale*Attn(s*norm(x)); x += mlp_scale*MLP(s*norm(x)),
// s = norm_scale (1, or 1/sqrt(i+1) with LN_SCALE); each add and the norm
// after it are one residual_norm_.
at::Tensor GPT::block(const Block& b, const at::Tensor& x_in, const at::Tensor& x0) {
  const auto [x, n] = residual_norm_(x_in, x0, b.resid_mix[0], b.resid_mix[1], b.norm_scale);
  const auto [x2, n2] = residual_norm_(x, attention(b, n), at::Tensor(), b.attn_scale, b.norm_scale);
  return x2 + b.mlp_scale.to(x2.scalar_type()) * mlp(b, n2);
}

at::Tensor GPT::mlp(const Block& b, const at::Tensor& x) {
  return adapted(linear(activation_(linear(x, b.fc)), b.mlp_proj), AdapterSite::Mlp, b.layer, x);
}

// Parallel residuals (docs/PRESETS.md ("Options from the best record (1.0611)")), both terms from the old lanes:
//   A = attn_scale * Attn(s*norm(m0*lane0 + m1*x0));  M = mlp_scale * MLP(s*norm(lane1))
//   lane_j = r_j*lane_j + P[0][j]*A + P[1][j]*M.
void GPT::parallel_block(const Block& b, at::Tensor& lane0, at::Tensor& lane1, const at::Tensor& x0) {
  const auto dt = lane0.scalar_type();
  auto norm = [&](const at::Tensor& t) { return scaled_norm(t, b.norm_scale); };
  const at::Tensor P = b.lane_mix.to(dt), r = b.lane_decay.to(dt);
  const at::Tensor A = b.attn_scale.to(dt) * attention(b, residual_norm_(lane0, x0, b.resid_mix[0], b.resid_mix[1], b.norm_scale).second);
  const at::Tensor M = b.mlp_scale.to(dt) * mlp(b, norm(lane1));
  lane0 = r[0] * lane0 + P[0][0] * A + P[1][0] * M;
  lane1 = r[1] * lane1 + P[0][1] * A + P[1][1] * M;
}

// Embedding (+ BigramHash), RMSNorm and SmearGate (configured order), then
// the U-Net over the block applications (each layer once, or the looped
// order): the first half push their outputs on a stack; each later one first
// merges pop() through skip slot k (k-th decoder application) while the
// stack is not empty: x + w_k * skip, or with SKIP_GATES lerp(w_k * skip, x, sigmoid(g_k)).
at::Tensor GPT::hidden(const at::Tensor& idx) {
  const auto dt = opts_.compute_dtype;
  at::Tensor x = at::embedding(tok_emb_, idx).to(dt);
  if (bigram_embed_.defined()) {
    at::Tensor h = at::embedding(weight(bigram_embed_), bigram_buckets(idx, cfg_.bigram_vocab_size));
    x = x + linear(h, bigram_proj_) * bigram_scale_.to(dt);
  }
  x = embed_norm_(x, idx, smear_);
  const at::Tensor x0 = x;
  const std::vector<std::int64_t>& order = looped_ ? looped_order_ : plain_order_;
  const std::size_t enc = order.size() / 2;
  std::vector<at::Tensor> skips;
  for (std::size_t j = 0; j < enc; ++j) {
    x = block(blocks_[static_cast<std::size_t>(order[j])], x, x0);
    skips.push_back(x);
  }
  at::Tensor lane1;  // parallel residuals: the second lane, from the first parallel layer on (x is lane 0)
  for (std::size_t j = enc; j < order.size(); ++j) {
    const Block& b = blocks_[static_cast<std::size_t>(order[j])];
    if (b.lane_mix.defined() && !lane1.defined()) lane1 = x;  // both lanes start as x; the skip enters lane 0 only
    if (!skips.empty()) {
      const auto k = static_cast<std::int64_t>(j - enc);
      x = skip_merge_(x, skips.back(), skip_weights_[k].to(dt), skip_gates_.defined() ? skip_gates_[k].to(dt) : at::Tensor());
      skips.pop_back();
    }
    if (b.lane_mix.defined())
      parallel_block(b, x, lane1, x0);
    else
      x = block(b, x, x0);
  }
  return rms_norm(lane1.defined() ? 0.5 * (x + lane1) : x);
}

at::Tensor GPT::head(const at::Tensor& h) const { return adapted(linear(h, tok_emb_), AdapterSite::Head, -1, h); }

at::Tensor GPT::logits(const at::Tensor& inputs) {
  // Logits in float32 (float64 when the whole model is float64), as softcap_cross_entropy takes them.
  const auto out = opts_.compute_dtype == at::kDouble ? at::kDouble : at::kFloat;
  return softcap(head(hidden(inputs)).to(out), cfg_.logit_softcap);
}

at::Tensor GPT::loss(const at::Tensor& inputs, const at::Tensor& targets) {
  if (fused_head()) return token_nll(inputs, targets).mean();
  const at::Tensor z = head(hidden(inputs));
  return softcap_cross_entropy(z.view({-1, z.size(-1)}), targets.reshape({-1}), cfg_.logit_softcap, at::Reduction::Mean);
}

at::Tensor GPT::training_loss(const at::Tensor& inputs, const at::Tensor& targets) {
  fake_quant_ = qat_;
  struct Off {
    bool& flag;
    ~Off() { flag = false; }
  } off{fake_quant_};
  return loss(inputs, targets);
}

at::Tensor GPT::token_nll(const at::Tensor& inputs, const at::Tensor& targets) {
  const at::Tensor h = hidden(inputs);
  if (fused_head())
    return fused_softcap_cross_entropy(h.reshape({-1, h.size(-1)}), weight(tok_emb_), targets.reshape({-1}), cfg_.logit_softcap)
        .view(targets.sizes());
  const at::Tensor z = head(h);
  return softcap_cross_entropy(z.view({-1, z.size(-1)}), targets.reshape({-1}), cfg_.logit_softcap).view(targets.sizes());
}

}  // namespace pgolf
