#include "pgolf/export/quant.h"

#include "pgolf/export/gptq.h"
#include "pgolf/config/components.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace pgolf {
namespace {

// GPTQ where this build has it (config/components.h).
RowQuantized gptq_rows(const at::Tensor& w, const at::Tensor& h, const RowQuantizer& rq, const GptqOptions& opts) {
  if constexpr (kHasGptq)
    return gptq_quantize(w, h, rq, opts);
  else
    missing_component("GPTQ");
}

bool contains(const std::string& name, const char* fragment) { return name.find(fragment) != std::string::npos; }

}  // namespace

QuantOptions quant_options(const ExportConfig& e, const QatConfig& qat) {
  QuantOptions o;
  for (const PlanClass& c : plan_classes()) o.*c.plan = e.*c.configured;
  o.passthrough_numel = e.quant_passthrough_numel;
  o.control_fp32_first = e.quant_control_fp32_first;
  o.fp16_patterns = e.fp16_keep_name_patterns;
  o.gptq.damp = e.gptq_damp;
  o.gptq.block = e.gptq_block;
  o.gptq_tokens = e.gptq_tokens;
  o.lqer_tensors = e.lqer_tensors;
  o.lqer_rank = e.lqer_rank;
  o.qat = qat.qat_quant;
  return o;
}

const std::vector<PlanClass>& plan_classes() {
  static const std::vector<PlanClass> classes = {
      {"QUANT_MLP", &QuantOptions::mlp, &ExportConfig::quant_mlp},
      {"QUANT_ATTN", &QuantOptions::attn, &ExportConfig::quant_attn},
      {"QUANT_BIGRAM_PROJ", &QuantOptions::bigram_proj, &ExportConfig::quant_bigram_proj},
      {"QUANT_TOK_EMB", &QuantOptions::tok_emb, &ExportConfig::quant_tok_emb},
      {"QUANT_BIGRAM_EMBED", &QuantOptions::bigram_embed, &ExportConfig::quant_bigram_embed},
      {"QUANT_OTHER", &QuantOptions::other, &ExportConfig::quant_other}};
  return classes;
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

std::map<std::string, RowQuantizer> qat_quantizers(const GPT& model, const QuantOptions& opts) {
  std::map<std::string, RowQuantizer> out;
  for (const auto& p : model.parameters())
    if (auto rq = qat_quantizer(p.name, opts)) out[p.name] = *rq;
  return out;
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
    RowQuantized r = plan.quant.gptq ? gptq_rows(t.to(at::kFloat).reshape({t.size(0), -1}), hessian.to(at::kCPU), plan.quant, gptq)
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
  if (q.lqer.rank > 0) {
    if constexpr (kHasLqer)
      w += low_rank_delta(q.lqer, w.size(0), w.size(1));
    else
      missing_component("LQER (the artifact holds LQER corrections)");
  }
  return w.reshape(q.shape);
}

void add_low_rank_correction(QuantTensor& q, const at::Tensor& original, std::int64_t rank) {
  if (q.plan.scheme != Scheme::IntRow || q.shape.size() != 2)
    throw std::invalid_argument("LQER corrects integer-quantised matrices; '" + q.name + "' is not one");
  q.lqer = {};
  if constexpr (kHasLqer)
    q.lqer = fit_low_rank(original.to(at::kFloat).reshape(q.shape) - dequantize(q), rank);
  else
    missing_component("LQER");
}

}  // namespace pgolf
