// The export plan of docs/MODEL.md ("The export"): the rules that choose how each tensor is stored
// (fp16, fp32 or one of the per-row integer quantisers of quantizer.h),
// magnitude pruning, and which quantiser late QAT uses for each matrix.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/model/model.h"
#include "pgolf/export/gptq.h"
#include "pgolf/export/lqer.h"
#include "pgolf/export/quantizer.h"

namespace pgolf {

// The export section of the configuration: one plan per tensor class and the
// rules that pick a class (docs/ARTIFACT.md).
struct QuantOptions {
  TensorPlan mlp, attn, bigram_proj, tok_emb, bigram_embed, other;
  std::int64_t passthrough_numel = 65536;  // float tensors this small: fp16
  bool control_fp32_first = true;          // control tensors fp32 before the size rule
  std::vector<std::string> fp16_patterns;  // name fragments kept fp16
  std::optional<RowQuantizer> qat;         // QAT quantiser for every matrix (unset: each class's own)
  GptqOptions gptq;                        // for plans with the gptq option
  std::int64_t gptq_tokens = 0;            // training tokens that calibrate GPTQ
  std::int64_t lqer_tensors = 0;           // LQER-correct this many integer matrices (largest error first)
  std::int64_t lqer_rank = 4;              // the corrections' rank
};
QuantOptions quant_options(const ExportConfig& e, const QatConfig& qat);

// The six tensor classes: the configuration key of each, its plan in
// QuantOptions and the configured one in ExportConfig.
struct PlanClass {
  const char* key;  // "QUANT_MLP", ...
  TensorPlan QuantOptions::*plan;
  TensorPlan ExportConfig::*configured;
};
const std::vector<PlanClass>& plan_classes();

// docs/ARTIFACT.md ("Which tensor gets which plan (first rule wins)"): non-float tensors as they are (fp16
// here); control tensors fp32 (if control_fp32_first); at most
// passthrough_numel entries fp16; control tensors fp32; fp16 name patterns;
// tok_emb / bigram.embed by their plans; ".mlp." the MLP plan; ".attn." the
// attention plan; bigram.proj its plan; anything else the "other" plan.
TensorPlan plan_tensor(const std::string& name, const at::Tensor& t, const QuantOptions& opts);

// The quantiser late QAT fake-quantises a linear matrix (block matrices and
// bigram.proj) with: QAT_QUANT if set, else the matrix's class plan (MLP,
// attention, bigram.proj) when that plan is an integer one, ignoring the size
// and name-pattern rules. None: the matrix stays in full precision.
std::optional<RowQuantizer> qat_quantizer(const std::string& name, const QuantOptions& opts);
// qat_quantizer of every parameter that has one (GPT::set_qat_quantizers).
std::map<std::string, RowQuantizer> qat_quantizers(const GPT& model, const QuantOptions& opts);

// Magnitude pruning applies to every 2-D parameter with more than 65,536 entries.
inline bool is_prunable(const at::Tensor& t) { return t.dim() == 2 && t.numel() > 65536; }
// Magnitude pruning: in every prunable parameter, entries with |w| below the
// `frac` quantile of |w| become 0. Returns the number of entries zeroed.
std::int64_t prune_small_weights(const std::vector<NamedTensor>& params, double frac);

// One tensor as stored in the artifact.
struct QuantTensor {
  std::string name;
  TensorPlan plan;
  std::vector<std::int64_t> shape;  // of the original tensor
  at::Tensor data;                  // int8 (IntRow), fp16 (Fp16) or fp32 (Fp32), CPU, contiguous, flat
  at::Tensor scale;                 // fp16 per row (IntRow); undefined otherwise
  LowRankCorrection lqer;           // IntRow matrices only; rank 0: none
};

// Quantises one tensor by its plan; a GPTQ plan needs the Hessian of the
// tensor's inputs (calibrate.h), others ignore it.
QuantTensor quantize_tensor(const std::string& name, const at::Tensor& t, const TensorPlan& plan, const at::Tensor& hessian,
                            const GptqOptions& gptq = {});
// Applies the plan of every parameter (none may use GPTQ).
std::vector<QuantTensor> quantize_tensors(const std::vector<NamedTensor>& params, const QuantOptions& opts);
// The float32 tensor a QuantTensor stands for: q * scale_r (plus the LQER
// correction, if any), or the stored floats.
at::Tensor dequantize(const QuantTensor& q);
// Gives an integer-quantised matrix the rank-`rank` LQER correction of its
// error against `original` (its float weight).
void add_low_rank_correction(QuantTensor& q, const at::Tensor& original, std::int64_t rank);

}  // namespace pgolf
