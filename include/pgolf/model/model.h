// The GPT of docs/MODEL.md ("The model"): token embedding tied with the head, BigramHash,
// RMSNorm + SmearGate (either order, or BOS-aware), U-Net of blocks (plain or
// gated skips) with GQA attention (full or partial, optionally NTK-scaled
// RoPE; optional XSA and output gate) and a relu^2 or LeakyReLU^2 MLP;
// optional layer-norm scale, parallel residual lanes and depth recurrence.
// Parameters carry the reference's state-dict names.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/export/quantizer.h"

namespace pgolf {

struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};

// Control tensors (docs/MODEL.md ("The model")): names containing attn_scale, mlp_scale, resid_mix,
// q_gain, out_gate, lane_mix, lane_decay, skip_weight, skip_gates, smear or
// bigram.scale. They stay fp32 and go to the scalar AdamW, never to Muon.
bool is_control_tensor(const std::string& name);

// docs/MODEL.md ("The optimiser") optimiser groups.
enum class ParamGroup { Muon, Embedding, Scalar };
ParamGroup param_group(const std::string& name, const at::Tensor& t);

// Where a test-time adapter (lora.h) may add its output: beside the query,
// key, value and output projections and the MLP of a block, or the head.

// What one physical layer is, by the configuration: built once by
// block_plans, logged once (format_block_plans), and what the GPT builds.
struct BlockPlan {
  std::int64_t layer = 0;   // physical index
  bool xsa = false;         // XSA_LAST_N: one of the last N layers
  bool out_gate = false;    // ATTN_OUT_GATE
  bool parallel = false;    // PARALLEL_RESID_FROM: two residual lanes from this layer on
  double norm_scale = 1.0;  // LN_SCALE: 1/sqrt(layer + 1), else 1
  std::int64_t repeats = 1; // LOOP_LAYERS: LOOP_REPEATS for the looped layers once the loop is on, else 1
  bool operator==(const BlockPlan& o) const {
    return layer == o.layer && xsa == o.xsa && out_gate == o.out_gate && parallel == o.parallel &&
           norm_scale == o.norm_scale && repeats == o.repeats;
  }
};
std::vector<BlockPlan> block_plans(const ModelConfig& cfg);
// One line: "blocks:L" then each layer with what it has beyond a plain block,
// e.g. "blocks:3 0 1+xsa*0.7071 2+xsa+parallel+loop3*0.5774".
std::string format_block_plans(const std::vector<BlockPlan>& plans);

// How the model is built beyond its section: device, precision, the seed of
// its init (SEED) and whether it may use the fused ops (FUSED_KERNELS).
struct ModelOptions {
  at::Device device = at::kCPU;
  at::ScalarType param_dtype = at::kFloat;    // master weights
  at::ScalarType compute_dtype = at::kFloat;  // activations (bf16 on CUDA)
  std::uint64_t seed = 1337;
  bool fused_kernels = false;
};

// Precision on a device: fp32 master weights; bf16 activations on CUDA, fp32 on CPU.
inline ModelOptions model_options_for(const at::Device& device, std::uint64_t seed = 1337, bool fused_kernels = false) {
  return {device, at::kFloat, device.is_cuda() ? at::kBFloat16 : at::kFloat, seed, fused_kernels};
}

class GPT {
 public:
  // Builds and initialises the model (docs/MODEL.md ("The model"): init) from opts.seed.
  GPT(const ModelConfig& cfg, ModelOptions opts);

  // Every parameter, in a fixed order. The tensors are the model's own
  // (leaf tensors with requires_grad); change them in place only.
  const std::vector<NamedTensor>& parameters() const { return params_; }
  const at::Tensor& param(const std::string& name) const;
  std::int64_t num_params() const;
  // The plans the blocks were built from (block_plans).
  const std::vector<BlockPlan>& plans() const { return plans_; }
  const ModelOptions& options() const { return opts_; }
  const ModelConfig& config() const { return cfg_; }

  // Mean cross-entropy over all targets (inputs, targets: [B, T] int64), with
  // the plain weights: evaluation, calibration and test-time training.
  at::Tensor loss(const at::Tensor& inputs, const at::Tensor& targets);
  // The training forward: loss() with, while QAT is on, every quantised
  // matrix fake-quantised (the seeds' `self.training and qat`). Nothing else
  // ever sees fake-quantised weights.
  at::Tensor training_loss(const at::Tensor& inputs, const at::Tensor& targets);
  // Per-target negative log-likelihood [B, T], float32.
  at::Tensor token_nll(const at::Tensor& inputs, const at::Tensor& targets);
  // Soft-capped logits [B, T, V], float32.
  at::Tensor logits(const at::Tensor& inputs);

  // Depth recurrence (LOOP_LAYERS): while on, the looped layers run
  // LOOP_REPEATS times; off, each layer runs once.
  void set_looped(bool on) { looped_ = on && !looped_order_.empty(); }
  bool looped() const { return looped_; }

  // Late QAT: while on, quantised matrices enter training_loss fake-quantised.
  void set_qat(bool on) { qat_ = on; }
  // The quantiser of each fake-quantised matrix, by parameter name (quant.h qat_quantizers).
  void set_qat_quantizers(const std::map<std::string, RowQuantizer>& quantizers);
  bool qat() const { return qat_; }

  // Calibration: while set, called with (parameter name, input [..., in]) for
  // every linear matrix the forward pass applies (block matrices,
  // bigram.proj, and tok_emb as the output head).
  using InputObserver = std::function<void(const std::string& name, const at::Tensor& input)>;
  void set_input_observer(InputObserver observer) { observer_ = std::move(observer); }

  // Test-time adapters: while set, called with (site, physical layer (-1 for
  // the head), the site's input [B, T, in]) wherever an AdapterSite is; a
  // defined result [B, T, out] is added to that site's output (before the
  // soft-cap for the head). Unset with an empty function.
  using Adapter = std::function<at::Tensor(AdapterSite site, std::int64_t layer, const at::Tensor& input)>;
  void set_adapter(Adapter adapter) { adapter_ = std::move(adapter); }

  // The SmearGate's parameters: the per-channel gate, or W_s and lambda of the BOS-aware one.
  struct Smear {
    at::Tensor gate, w, lambda;
  };

 private:
  struct Block {
    at::Tensor c_q, c_k, c_v, proj, q_gain, fc, mlp_proj, attn_scale, mlp_scale, resid_mix;
    at::Tensor out_gate;  // ATTN_OUT_GATE: [heads, 12], else undefined
    at::Tensor lane_mix, lane_decay;  // parallel residuals: P [2, 2] and r [2], else undefined
    bool xsa = false;
    std::int64_t layer = 0;   // physical index
    double norm_scale = 1.0;  // LN_SCALE: 1/sqrt(i+1) in block i, else 1
  };

  // The embedding's RMSNorm and SmearGate, in the configured order and kind.
  using EmbedNorm = at::Tensor (*)(const at::Tensor& x, const at::Tensor& ids, const Smear& smear);
  // How a decoder application takes in the skip it pops (SKIP_GATES).
  using SkipMerge = at::Tensor (*)(const at::Tensor& x, const at::Tensor& skip, const at::Tensor& w, const at::Tensor& g);
  // q/k [B, T, heads, hd] -> RoPE(RMSNorm(x)) * gain (undefined: 1), same layout (qk_norm_rope.h: fused or reference).
  using QkNormRope = at::Tensor (*)(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& gain);
  // (out, n): out = p x + q y (p undefined: 1), n = s * RMSNorm(out) (residual_norm.h: fused or reference).
  using ResidualNorm = std::pair<at::Tensor, at::Tensor> (*)(const at::Tensor& x, const at::Tensor& y, const at::Tensor& p,
                                                             const at::Tensor& q, double s);
  // XSA of y [B, T, H, hd] against v [B, T, Hkv, hd] (xsa.h: fused or reference).
  using Xsa = at::Tensor (*)(const at::Tensor& y, const at::Tensor& v);
  // The MLP's activation (MLP_ACTIVATION).
  using Activation = std::function<at::Tensor(const at::Tensor&)>;
  at::Tensor& add(const std::string& name, at::Tensor t);
  at::Tensor weight(const at::Tensor& w) const;  // a matrix as the forward pass sees it
  at::Tensor linear(const at::Tensor& x, const at::Tensor& w) const;  // x @ weight(w)^T, observed
  at::Tensor head(const at::Tensor& h) const;  // pre-cap logits of hidden states h: h @ tok_emb^T (+ the head adapter)
  // y plus the adapter's output for `site` of `layer` on input x, if any.
  at::Tensor adapted(const at::Tensor& y, AdapterSite site, std::int64_t layer, const at::Tensor& x) const;
  at::Tensor attention(const Block& b, const at::Tensor& x);
  at::Tensor block(const Block& b, const at::Tensor& x, const at::Tensor& x0);
  at::Tensor mlp(const Block& b, const at::Tensor& x);
  void parallel_block(const Block& b, at::Tensor& lane0, at::Tensor& lane1, const at::Tensor& x0);
  at::Tensor hidden(const at::Tensor& inputs);
  // The loss head is fused (fused.h) unless an adapter or observer needs the logits.
  bool fused_head() const { return fused_ && !adapter_ && !observer_; }

  ModelConfig cfg_;
  ModelOptions opts_;
  std::vector<NamedTensor> params_;
  at::Tensor tok_emb_, bigram_embed_, bigram_proj_, bigram_scale_, skip_weights_, skip_gates_;
  Smear smear_;
  std::vector<BlockPlan> plans_;
  std::vector<Block> blocks_;
  EmbedNorm embed_norm_ = nullptr;
  Activation activation_;
  SkipMerge skip_merge_ = nullptr;
  QkNormRope qk_norm_rope_ = nullptr;
  ResidualNorm residual_norm_ = nullptr;
  Xsa xsa_ = nullptr;
  std::vector<std::int64_t> plain_order_, looped_order_;  // block applications, in order
  bool looped_ = false;
  std::map<const void*, RowQuantizer> qat_quant_;  // tensor identity -> QAT quantiser
  std::map<const void*, std::string> names_;       // tensor identity -> parameter name
  InputObserver observer_;
  Adapter adapter_;
  bool qat_ = false;
  bool fake_quant_ = false;  // inside training_loss with QAT on
  bool fused_ = false;  // FUSED_KERNELS on CUDA: the fused loss head and activation (fused.h)
  std::int64_t rope_len_ = 0;
  at::Tensor rope_cos_, rope_sin_;
};

}  // namespace pgolf
