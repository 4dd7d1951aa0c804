#include "pgolf/export/quant.h"

#include "pgolf/export/gptq.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace pgolf {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, sep);)
    if (!part.empty()) out.push_back(part);
  return out;
}

bool contains(const std::string& name, const char* fragment) { return name.find(fragment) != std::string::npos; }

}  // namespace

TensorPlan parse_tensor_plan(const std::string& text, const std::string& key) {
  auto bad = [&](const std::string& why) -> ConfigError {
    return ConfigError(key + "='" + text + "': " + why +
                       " (expected fp16, fp32 or int<2..8> with options q=<quantile>, k=<SDClip std multiple>, floor, sym, gptq; e.g. int6,floor)");
  };
  const auto parts = split(text, ',');
  if (parts.empty()) throw bad("empty");
  TensorPlan plan;
  if (parts[0] == "fp16" || parts[0] == "fp32") {
    if (parts.size() > 1) throw bad("fp16/fp32 take no options");
    plan.scheme = parts[0] == "fp16" ? Scheme::Fp16 : Scheme::Fp32;
    return plan;
  }
  if (parts[0].size() != 4 || parts[0].compare(0, 3, "int") != 0 || parts[0][3] < '2' || parts[0][3] > '8')
    throw bad("unknown scheme '" + parts[0] + "'");
  plan.scheme = Scheme::IntRow;
  plan.quant.bits = parts[0][3] - '0';
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string& o = parts[i];
    if (o == "floor") {
      plan.quant.floor = true;
    } else if (o == "gptq") {
      plan.quant.gptq = true;
    } else if (o == "sym") {
      plan.quant.symmetric = true;
    } else if (o.compare(0, 2, "k=") == 0) {
      char* end = nullptr;
      const double k = std::strtod(o.c_str() + 2, &end);
      if (o.size() == 2 || *end != '\0' || !(k > 0.0 && k < 1e6)) throw bad("SDClip k must be a positive number");
      plan.quant.sd_k = k;
    } else if (o.compare(0, 2, "q=") == 0) {
      char* end = nullptr;
      const double q = std::strtod(o.c_str() + 2, &end);
      if (o.size() == 2 || *end != '\0' || !(q > 0.0 && q <= 1.0)) throw bad("clip quantile must be in (0, 1]");
      plan.quant.clip_q = q;
    } else {
      throw bad("unknown option '" + o + "'");
    }
  }
  return plan;
}

std::string format_tensor_plan(const TensorPlan& plan) {
  if (plan.scheme == Scheme::Fp16) return "fp16";
  if (plan.scheme == Scheme::Fp32) return "fp32";
  std::ostringstream out;
  out << "int" << plan.quant.bits;
  if (plan.quant.clip_q != 1.0) out << ",q=" << shortest_decimal(plan.quant.clip_q);
  if (plan.quant.sd_k > 0) out << ",k=" << shortest_decimal(plan.quant.sd_k);
  if (plan.quant.floor) out << ",floor";
  if (plan.quant.symmetric) out << ",sym";
  if (plan.quant.gptq) out << ",gptq";
  return out.str();
}

QuantOptions quant_options(const Config& cfg) {
  QuantOptions o;
  for (const PlanClass& c : plan_classes()) o.*c.plan = parse_tensor_plan(get_config_value(cfg, *find_config_key(c.key)), c.key);
  o.passthrough_numel = cfg.quant_passthrough_numel;
  o.control_fp32_first = cfg.quant_control_fp32_first;
  o.fp16_patterns = split(cfg.fp16_keep_name_patterns, ',');
  o.gptq.damp = cfg.gptq_damp;
  o.gptq.block = cfg.gptq_block;
  o.gptq_tokens = cfg.gptq_tokens;
  o.lqer_tensors = cfg.lqer_tensors;
  o.lqer_rank = cfg.lqer_rank;
  if (!cfg.qat_quant.empty()) {
    TensorPlan q = parse_tensor_plan(cfg.qat_quant, "QAT_QUANT");
    if (q.scheme != Scheme::IntRow) throw ConfigError("QAT_QUANT='" + cfg.qat_quant + "' must be an int<B> quantiser");
    o.qat = q.quant;
  }
  return o;
}

const std::vector<PlanClass>& plan_classes() {
  static const std::vector<PlanClass> classes = {
      {"QUANT_MLP", &QuantOptions::mlp},           {"QUANT_ATTN", &QuantOptions::attn},
      {"QUANT_BIGRAM_PROJ", &QuantOptions::bigram_proj}, {"QUANT_TOK_EMB", &QuantOptions::tok_emb},
      {"QUANT_BIGRAM_EMBED", &QuantOptions::bigram_embed}, {"QUANT_OTHER", &QuantOptions::other}};
  return classes;
}

bool uses_gptq(const QuantOptions& o) {
  for (const PlanClass& c : plan_classes()) {
    const TensorPlan& p = o.*c.plan;
    if (p.scheme == Scheme::IntRow && p.quant.gptq) return true;
  }
  return false;
}

TensorPlan plan_tensor(const std::string& name, const at::Tensor& t, const QuantOptions& o) {
  TORCH_CHECK(t.is_floating_point(), "tensor '", name, "' is not floating point; the model has no such parameter");
  const bool control = is_control_tensor(name);
  if (control && o.control_fp32_first) return {Scheme::Fp32};
  if (t.numel() <= o.passthrough_numel) return {Scheme::Fp16};
  if (control) return {Scheme::Fp32};
  for (const auto& p : o.fp16_patterns)
    if (contains(name, p.c_str())) return {Scheme::Fp16};
  if (name == "tok_emb.weight") return o.tok_emb;
  if (name == "bigram.embed.weight") return o.bigram_embed;
  if (contains(name, ".mlp.")) return o.mlp;
  if (contains(name, ".attn.")) return o.attn;
  if (name == "bigram.proj.weight") return o.bigram_proj;
  return o.other;
}

std::optional<RowQuantizer> qat_quantizer(const std::string& name, const QuantOptions& o) {
  const bool block_matrix = name.rfind("blocks.", 0) == 0 && (contains(name, ".mlp.") || contains(name, ".attn.")) &&
                            !is_control_tensor(name);
  if (!block_matrix && name != "bigram.proj.weight") return std::nullopt;
  if (o.qat) return o.qat;
  const TensorPlan& plan = contains(name, ".mlp.") ? o.mlp : contains(name, ".attn.") ? o.attn : o.bigram_proj;
  if (plan.scheme != Scheme::IntRow) return std::nullopt;
  return plan.quant;
}

std::int64_t prune_small_weights(const std::vector<NamedTensor>& params, double frac) {
  if (frac <= 0) return 0;
  at::NoGradGuard no_grad;
  std::int64_t zeroed = 0;
  for (const auto& p : params) {
    if (!is_prunable(p.tensor)) continue;
    at::Tensor w = p.tensor.detach();
    at::Tensor threshold = at::quantile(w.abs().to(at::kFloat).flatten(), frac);
    at::Tensor mask = w.abs() < threshold.to(w.scalar_type());
    zeroed += mask.sum().item<std::int64_t>();
    w.masked_fill_(mask, 0);
  }
  return zeroed;
}

QuantTensor quantize_tensor(const std::string& name, const at::Tensor& tensor, const TensorPlan& plan,
                            const at::Tensor& hessian, const GptqOptions& gptq) {
  at::Tensor t = tensor.detach().to(at::kCPU);
  QuantTensor q{name, plan, t.sizes().vec(), {}, {}};
  if (plan.scheme == Scheme::IntRow) {
    if (plan.quant.gptq && !hessian.defined())
      throw std::runtime_error("tensor '" + name + "' is planned with GPTQ but has no calibration Hessian");
    RowQuantized r = plan.quant.gptq ? gptq_quantize(t.to(at::kFloat).reshape({t.size(0), -1}), hessian.to(at::kCPU), plan.quant, gptq)
                                     : quantize_rows(t, plan.quant);
    q.data = r.q.flatten().contiguous();
    q.scale = r.scale.contiguous();
  } else {
    q.data = t.to(plan.scheme == Scheme::Fp16 ? at::kHalf : at::kFloat).flatten().contiguous();
  }
  return q;
}

std::vector<QuantTensor> quantize_tensors(const std::vector<NamedTensor>& params, const QuantOptions& opts) {
  std::vector<QuantTensor> out;
  for (const auto& p : params) out.push_back(quantize_tensor(p.name, p.tensor, plan_tensor(p.name, p.tensor, opts), {}));
  return out;
}

at::Tensor dequantize(const QuantTensor& q) {
  if (!q.scale.defined()) return q.data.to(at::kFloat).reshape(q.shape);
  at::Tensor w = dequantize_rows({q.data.reshape({q.scale.numel(), -1}), q.scale});
  if (q.lqer.rank > 0) w += low_rank_delta(q.lqer, w.size(0), w.size(1));
  return w.reshape(q.shape);
}

void add_low_rank_correction(QuantTensor& q, const at::Tensor& original, std::int64_t rank) {
  if (q.plan.scheme != Scheme::IntRow || q.shape.size() != 2)
    throw std::invalid_argument("LQER corrects integer-quantised matrices; '" + q.name + "' is not one");
  q.lqer = {};
  q.lqer = fit_low_rank(original.to(at::kFloat).reshape(q.shape) - dequantize(q), rank);
}

}  // namespace pgolf
