#include "pgolf/fit.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "pgolf/artifact.h"
#include "pgolf/gptq.h"

namespace pgolf {

FitOptions fit_options(const Config& cfg, std::uint64_t code_bytes) {
  FitOptions o;
  o.enabled = cfg.export_fit;
  o.budget = static_cast<std::uint64_t>(cfg.budget_bytes);
  o.margin = static_cast<std::uint64_t>(cfg.fit_margin_bytes);
  o.code_bytes = code_bytes;
  return o;
}

namespace {

// Order-0 entropy in bits of the byte values at positions offset, offset+stride, ...
double entropy_bits(const at::Tensor& bytes_u8, std::int64_t offset, std::int64_t stride) {
  at::Tensor v = bytes_u8.slice(0, offset, bytes_u8.numel(), stride).to(at::kLong);
  const double n = static_cast<double>(v.numel());
  if (n == 0) return 0;
  at::Tensor p = at::bincount(v, {}, 256).to(at::kDouble) / n;
  p = p.masked_select(p > 0);
  return -(p * p.log2()).sum().item<double>() * n;
}

}  // namespace

// IntRow: entropy of the integers plus the fp16 scales stored raw; fp16: the
// low and high byte of each value as two streams; fp32 raw.
double predicted_bytes(const QuantTensor& t) {
  at::Tensor bytes = at::from_blob(t.data.data_ptr(), {t.data.numel() * static_cast<std::int64_t>(t.data.element_size())},
                                   at::TensorOptions().dtype(at::kByte));
  switch (t.plan.scheme) {
    case Scheme::IntRow: return entropy_bits(bytes, 0, 1) / 8.0 + 2.0 * static_cast<double>(t.scale.numel());
    case Scheme::Fp16: return (entropy_bits(bytes, 0, 2) + entropy_bits(bytes, 1, 2)) / 8.0;
    case Scheme::Fp32: return static_cast<double>(bytes.numel());
  }
  return static_cast<double>(bytes.numel());
}

namespace {

constexpr double kPruneStep = 0.02, kPruneMax = 0.6;
constexpr int kMinBits = 3, kMaxRealCompressions = 6;

struct TensorEval {
  QuantTensor q;
  double bytes = 0;  // predicted, before the calibration ratio
  double sse = 0;    // sum (w - w')^2 against the unpruned weight
};

// Quantises the weights under a choice, caching per tensor: a choice that
// changes one class re-quantises only that class's tensors. GPTQ tensors of
// equal shape and plan are rounded together in one batched call.
class Evaluator {
 public:
  Evaluator(const std::vector<NamedTensor>& weights, const std::map<std::string, at::Tensor>& hessians)
      : hessians_(hessians) {
    for (const auto& w : weights) weights_.push_back({w.name, w.tensor.detach().to(at::kCPU, at::kFloat).contiguous()});
  }

  std::size_t size() const { return weights_.size(); }

  const TensorEval& eval(std::size_t i, const ExportChoice& c) {
    const std::string k = key(i, c);
    auto it = cache_.find(k);
    if (it != cache_.end()) return it->second;
    const NamedTensor& w = weights_[i];
    return store(k, i, quantize_tensor(w.name, source(i, c), plan_tensor(w.name, w.tensor, c.quant), hessian(i), c.quant.gptq));
  }

  struct Totals {
    double bytes = 0, sse = 0;
  };
  Totals totals(const ExportChoice& c) {
    batch_gptq(c);
    Totals t;
    for (std::size_t i = 0; i < size(); ++i) {
      const TensorEval& e = eval(i, c);
      t.bytes += e.bytes;
      t.sse += e.sse;
    }
    return t;
  }

  std::vector<QuantTensor> tensors(const ExportChoice& c) {
    batch_gptq(c);
    std::vector<QuantTensor> out;
    for (std::size_t i = 0; i < size(); ++i) out.push_back(eval(i, c).q);
    return out;
  }

  // Frees what no longer matters: entries of pruning fractions other than `keep`.
  void forget_other_prunings(double keep) {
    const std::string tail = "|" + shortest_decimal(keep);
    for (auto it = cache_.begin(); it != cache_.end();) {
      const std::string& k = it->first;
      const bool pruned_entry = k.size() < 2 || k.compare(k.size() - 2, 2, "|0") != 0;
      const bool keep_it = !pruned_entry || (k.size() >= tail.size() && k.compare(k.size() - tail.size(), tail.size(), tail) == 0);
      it = keep_it ? std::next(it) : cache_.erase(it);
    }
    for (auto it = pruned_.begin(); it != pruned_.end();) it = it->first.second == keep ? std::next(it) : pruned_.erase(it);
  }

 private:
  bool prunable(std::size_t i, const ExportChoice& c) const {
    const at::Tensor& t = weights_[i].tensor;
    return t.dim() == 2 && t.numel() > 65536 && c.prune_frac > 0;
  }

  std::string key(std::size_t i, const ExportChoice& c) const {
    const NamedTensor& w = weights_[i];
    return w.name + "|" + format_tensor_plan(plan_tensor(w.name, w.tensor, c.quant)) + "|" +
           (prunable(i, c) ? shortest_decimal(c.prune_frac) : "0");
  }

  at::Tensor source(std::size_t i, const ExportChoice& c) { return prunable(i, c) ? pruned(i, c.prune_frac) : weights_[i].tensor; }

  at::Tensor hessian(std::size_t i) const {
    auto it = hessians_.find(weights_[i].name);
    return it == hessians_.end() ? at::Tensor() : it->second;
  }

  const TensorEval& store(const std::string& k, std::size_t i, QuantTensor q) {
    TensorEval e;
    e.q = std::move(q);
    e.bytes = predicted_bytes(e.q);
    e.sse = (dequantize(e.q) - weights_[i].tensor).pow(2).sum().item<double>();
    return cache_.emplace(k, std::move(e)).first->second;
  }

  // Rounds every GPTQ tensor of `c` not yet cached, grouped by shape and plan.
  void batch_gptq(const ExportChoice& c) {
    std::map<std::string, std::vector<std::size_t>> groups;
    for (std::size_t i = 0; i < size(); ++i) {
      const TensorPlan plan = plan_tensor(weights_[i].name, weights_[i].tensor, c.quant);
      if (plan.scheme != Scheme::IntRow || !plan.quant.gptq || cache_.count(key(i, c)) || !hessian(i).defined()) continue;
      groups[format_tensor_plan(plan) + c10::str(weights_[i].tensor.sizes())].push_back(i);
    }
    for (const auto& [group, members] : groups) {
      std::vector<at::Tensor> ws, hs;
      for (std::size_t i : members) ws.push_back(source(i, c)), hs.push_back(hessian(i).to(at::kCPU));
      const TensorPlan plan = plan_tensor(weights_[members[0]].name, weights_[members[0]].tensor, c.quant);
      const std::vector<RowQuantized> rs = gptq_quantize_batched(at::stack(ws), at::stack(hs), plan.quant, c.quant.gptq);
      for (std::size_t j = 0; j < members.size(); ++j) {
        const NamedTensor& w = weights_[members[j]];
        store(key(members[j], c), members[j],
              {w.name, plan, w.tensor.sizes().vec(), rs[j].q.flatten().contiguous(), rs[j].scale.contiguous()});
      }
    }
  }

  at::Tensor pruned(std::size_t i, double frac) {
    auto key = std::make_pair(i, frac);
    auto it = pruned_.find(key);
    if (it != pruned_.end()) return it->second;
    at::Tensor t = weights_[i].tensor.clone();
    prune_small_weights({{weights_[i].name, t}}, frac);
    return pruned_.emplace(key, t).first->second;
  }

  std::vector<NamedTensor> weights_;
  const std::map<std::string, at::Tensor>& hessians_;
  std::map<std::string, TensorEval> cache_;
  std::map<std::pair<std::size_t, double>, at::Tensor> pruned_;
};

struct Move {
  std::string what;
  ExportChoice choice;
};

// Every single change that stores the model in fewer bytes.
std::vector<Move> moves_from(const ExportChoice& c) {
  std::vector<Move> out;
  if (c.prune_frac + kPruneStep <= kPruneMax + 1e-12) {
    Move m{"", c};
    m.choice.prune_frac = std::round((c.prune_frac + kPruneStep) * 1000.0) / 1000.0;
    m.what = "PRUNE_FRAC=" + shortest_decimal(m.choice.prune_frac);
    out.push_back(m);
  }
  const std::pair<const char*, TensorPlan QuantOptions::*> classes[] = {
      {"QUANT_MLP", &QuantOptions::mlp},           {"QUANT_ATTN", &QuantOptions::attn},
      {"QUANT_BIGRAM_PROJ", &QuantOptions::bigram_proj}, {"QUANT_TOK_EMB", &QuantOptions::tok_emb},
      {"QUANT_BIGRAM_EMBED", &QuantOptions::bigram_embed}, {"QUANT_OTHER", &QuantOptions::other}};
  for (const auto& [key, member] : classes) {
    Move m{"", c};
    TensorPlan& p = m.choice.quant.*member;
    if (p.scheme == Scheme::IntRow) {
      if (p.quant.bits <= kMinBits) continue;
      --p.quant.bits;
    } else {
      p = TensorPlan{Scheme::IntRow, RowQuantizer{8}};  // fp16/fp32 -> int8 per row, no floor
    }
    m.what = std::string(key) + "=" + format_tensor_plan(p);
    out.push_back(m);
  }
  return out;
}

std::string fmt_bytes(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", b);
  return buf;
}

}  // namespace

FitResult fit_export(const std::vector<NamedTensor>& weights, const std::map<std::string, at::Tensor>& hessians,
                     const ExportChoice& start, const FitOptions& opts,
                     const std::function<std::string(const std::string&)>& compress, std::uint64_t header_bytes,
                     RunLog& log) {
  at::NoGradGuard no_grad;
  Evaluator ev(weights, hessians);
  const double target = static_cast<double>(opts.target());
  const double start_sse = ev.totals(start).sse;
  ExportChoice cur = start;
  double ratio = 1.0;  // real compressed bytes / predicted bytes, from the last real compression
  FitResult r;
  for (int real = 0;; ++real) {
    r.tensors = ev.tensors(cur);
    r.payload = serialize_tensors(r.tensors);
    log.progress("compressing the payload (" + std::to_string(r.payload.size()) + " bytes)...");
    r.packed = compress(r.payload);
    const double artifact = static_cast<double>(r.packed.size() + header_bytes);
    ratio = artifact / std::max(ev.totals(cur).bytes, 1.0);
    if (artifact <= target || !opts.enabled) {
      if (real > 0)
        log.line("fit: fits: artifact " + fmt_bytes(artifact) + " bytes, margin " + fmt_bytes(target - artifact) +
                 " bytes under BUDGET_BYTES - FIT_MARGIN_BYTES - code bytes = " + fmt_bytes(target));
      break;
    }
    if (real == 0)
      log.line("fit: artifact " + fmt_bytes(artifact) + " bytes + code " + std::to_string(opts.code_bytes) + " is over BUDGET_BYTES=" +
               std::to_string(opts.budget) + " - FIT_MARGIN_BYTES=" + std::to_string(opts.margin) + " by " +
               fmt_bytes(artifact - target) + " bytes; fitting (EXPORT_FIT=0 turns this off)");
    if (real == kMaxRealCompressions)
      throw FitError("the export is still " + fmt_bytes(artifact - target) + " bytes over its target after " +
                     std::to_string(real) + " fitted attempts: raise FIT_MARGIN_BYTES or set the QUANT_* plans by hand");
    // Greedy: the change with the least added error per byte saved, until the prediction fits.
    while (ev.totals(cur).bytes * ratio > target) {
      const Evaluator::Totals now = ev.totals(cur);
      const Move* best = nullptr;
      double best_cost = 0, best_bytes = 0, best_sse = 0;
      const std::vector<Move> moves = moves_from(cur);
      for (const Move& m : moves) {
        log.progress("fit: trying " + m.what);
        const Evaluator::Totals t = ev.totals(m.choice);
        const double saved = (now.bytes - t.bytes) * ratio;
        if (saved < 1.0) continue;
        const double cost = std::max(t.sse - now.sse, 0.0) / saved;
        if (!best || cost < best_cost) best = &m, best_cost = cost, best_bytes = t.bytes * ratio, best_sse = t.sse;
      }
      if (!best)
        throw FitError("no export choice fits: the smallest reachable artifact is " + fmt_bytes(now.bytes * ratio) +
                       " bytes (predicted), " + fmt_bytes(now.bytes * ratio - target) + " over BUDGET_BYTES=" +
                       std::to_string(opts.budget) + " minus FIT_MARGIN_BYTES=" + std::to_string(opts.margin) +
                       " and " + std::to_string(opts.code_bytes) +
                       " code bytes; make the model smaller (NUM_LAYERS, MODEL_DIM, MLP_MULT, BIGRAM_VOCAB_SIZE) or raise BUDGET_BYTES");
      cur = best->choice;
      ev.forget_other_prunings(cur.prune_frac);
      log.line("fit: " + best->what + " predicted " + fmt_bytes(best_bytes) + " bytes, added squared error " +
               shortest_decimal(best_sse - start_sse) + ", margin " + fmt_bytes(target - best_bytes) + " bytes");
    }
  }
  r.choice = cur;
  r.added_sse = ev.totals(cur).sse - start_sse;
  const QuantOptions &a = cur.quant, &b = start.quant;
  r.changed = cur.prune_frac != start.prune_frac || !(a.mlp == b.mlp && a.attn == b.attn && a.bigram_proj == b.bigram_proj &&
                                                     a.tok_emb == b.tok_emb && a.bigram_embed == b.bigram_embed && a.other == b.other);
  return r;
}

}  // namespace pgolf
