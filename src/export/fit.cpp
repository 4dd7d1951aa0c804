#include "pgolf/export/fit.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdio>
#include <map>
#include <tuple>

#include "pgolf/export/artifact.h"
#include "pgolf/export/gptq.h"
#include "pgolf/config/components.h"

namespace pgolf {

FitOptions fit_options(const ExportConfig& cfg, std::uint64_t code_bytes) {
  FitOptions o;
  o.enabled = cfg.export_fit;
  o.budget = static_cast<std::uint64_t>(cfg.budget_bytes);
  o.margin = static_cast<std::uint64_t>(cfg.fit_margin_bytes);
  o.spend_spare = cfg.fit_spend_spare;
  o.code_bytes = code_bytes;
  return o;
}

// Compresses kSampleChunks evenly spaced chunks of the tensor's stored bytes
// (all of them when the tensor is small) with the artifact's codec and scales
// the result to the whole tensor; the scales are counted raw, LQER factors
// compressed whole.
double predicted_bytes(const QuantTensor& t, Codec codec) {
  constexpr std::size_t kSampleChunks = 4, kChunkBytes = 16384;
  const std::size_t n = static_cast<std::size_t>(t.data.numel()) * t.data.element_size();
  const char* data = static_cast<const char*>(t.data.data_ptr());
  double extra = t.scale.defined() ? 2.0 * static_cast<double>(t.scale.numel()) : 0.0;
  if (t.lqer.rank > 0) {  // the factors are small: compressed whole, their scales raw
    const LowRankCorrection& l = t.lqer;
    extra += static_cast<double>(
        compress(std::string(static_cast<const char*>(l.a.data_ptr()), l.a.numel()) +
                     std::string(static_cast<const char*>(l.b.data_ptr()), l.b.numel()), codec).size() +
        2 * (l.a_scale.numel() + l.b_scale.numel()));
  }
  if (n <= kSampleChunks * kChunkBytes) return static_cast<double>(compress(std::string(data, n), codec).size()) + extra;
  std::string sample;
  for (std::size_t k = 0; k < kSampleChunks; ++k) sample.append(data + k * ((n - kChunkBytes) / (kSampleChunks - 1)), kChunkBytes);
  const double packed = static_cast<double>(compress(sample, codec).size());
  return packed * static_cast<double>(n) / static_cast<double>(sample.size()) + extra;
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
  Evaluator(const std::vector<NamedTensor>& weights, const std::map<std::string, at::Tensor>& hessians, Codec codec)
      : hessians_(hessians), codec_(codec) {
    for (const auto& w : weights) weights_.push_back({w.name, w.tensor.detach().to(at::kCPU, at::kFloat).contiguous()});
  }

  std::size_t size() const { return weights_.size(); }

  const TensorEval& eval(std::size_t i, const ExportChoice& c) {
    const Key k = key(i, c);
    auto it = cache_.find(k);
    if (it != cache_.end()) return it->second;
    const NamedTensor& w = weights_[i];
    return store(k, i, quantize_tensor(w.name, source(i, c), plan_tensor(w.name, w.tensor, c.quant), hessian(i), c.quant.gptq));
  }

  struct Totals {
    double bytes = 0, sse = 0;
  };
  Totals totals(const ExportChoice& c) {
    Totals t;
    for (const TensorEval* e : stored(c)) {
      t.bytes += e->bytes;
      t.sse += e->sse;
    }
    return t;
  }

  std::vector<QuantTensor> tensors(const ExportChoice& c) {
    std::vector<QuantTensor> out;
    for (const TensorEval* e : stored(c)) out.push_back(e->q);
    return out;
  }

  // Frees what no longer matters: entries of pruning fractions other than `keep`.
  void forget_other_prunings(double keep) {
    for (auto it = cache_.begin(); it != cache_.end();) {
      const double frac = std::get<2>(it->first);
      it = frac == 0 || frac == keep ? std::next(it) : cache_.erase(it);
    }
    for (auto it = pruned_.begin(); it != pruned_.end();) it = it->first.second == keep ? std::next(it) : pruned_.erase(it);
  }

 private:
  // A cached result: tensor index, its plan as text, and the pruning fraction
  // applied to it (0 for tensors pruning leaves alone).
  using Key = std::tuple<std::size_t, std::string, double>;

  // Every tensor as the artifact stores it under c: quantised, and the
  // c.quant.lqer_tensors integer matrices of largest error LQER-corrected.
  std::vector<const TensorEval*> stored(const ExportChoice& c) {
    batch_gptq(c);
    std::vector<const TensorEval*> out;
    std::vector<std::pair<double, std::size_t>> errors;
    for (std::size_t i = 0; i < size(); ++i) {
      out.push_back(&eval(i, c));
      if (out.back()->q.plan.scheme == Scheme::IntRow && out.back()->q.shape.size() == 2) errors.push_back({out.back()->sse, i});
    }
    const std::size_t n = std::min<std::size_t>(errors.size(), static_cast<std::size_t>(c.quant.lqer_tensors));
    std::partial_sort(errors.begin(), errors.begin() + n, errors.end(), std::greater<>());
    for (std::size_t j = 0; j < n; ++j) out[errors[j].second] = &corrected(errors[j].second, c);
    return out;
  }

  const TensorEval& corrected(std::size_t i, const ExportChoice& c) {
    Key k = key(i, c);
    std::get<1>(k) += ",lqer" + std::to_string(c.quant.lqer_rank);
    auto it = cache_.find(k);
    if (it != cache_.end()) return it->second;
    QuantTensor q = eval(i, c).q;
    add_low_rank_correction(q, weights_[i].tensor, c.quant.lqer_rank);
    return store(k, i, std::move(q));
  }

  bool prunable(std::size_t i, const ExportChoice& c) const { return is_prunable(weights_[i].tensor) && c.prune_frac > 0; }

  Key key(std::size_t i, const ExportChoice& c) const {
    const NamedTensor& w = weights_[i];
    return {i, format_tensor_plan(plan_tensor(w.name, w.tensor, c.quant)), prunable(i, c) ? c.prune_frac : 0.0};
  }

  at::Tensor source(std::size_t i, const ExportChoice& c) { return prunable(i, c) ? pruned(i, c.prune_frac) : weights_[i].tensor; }

  at::Tensor hessian(std::size_t i) const {
    auto it = hessians_.find(weights_[i].name);
    return it == hessians_.end() ? at::Tensor() : it->second;
  }

  const TensorEval& store(const Key& k, std::size_t i, QuantTensor q) {
    TensorEval e;
    e.q = std::move(q);
    e.bytes = predicted_bytes(e.q, codec_);
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
      std::vector<RowQuantized> rs;
      if constexpr (kHasGptq)
        rs = gptq_quantize_batched(at::stack(ws), at::stack(hs), plan.quant, c.quant.gptq);
      else
        missing_component("GPTQ");
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
  Codec codec_;
  std::map<Key, TensorEval> cache_;
  std::map<std::pair<std::size_t, double>, at::Tensor> pruned_;
};

struct Move {
  std::string what;
  ExportChoice choice;
};

Move prune_move(const ExportChoice& c, double frac) {
  Move m{"", c};
  m.choice.prune_frac = std::round(frac * 1000.0) / 1000.0;
  m.what = "PRUNE_FRAC=" + shortest_decimal(m.choice.prune_frac);
  return m;
}

Move plan_move(const ExportChoice& c, const PlanClass& cls, const TensorPlan& plan) {
  Move m{"", c};
  m.choice.quant.*cls.plan = plan;
  m.what = std::string(cls.key) + "=" + format_tensor_plan(plan);
  return m;
}

// Every single change that stores the model in fewer bytes: more pruning, one
// bit fewer for a class, fp16/fp32 -> int8 per row (no floor).
std::vector<Move> shrinking_moves(const ExportChoice& c) {
  std::vector<Move> out;
  if (c.prune_frac + kPruneStep <= kPruneMax + 1e-12) out.push_back(prune_move(c, c.prune_frac + kPruneStep));
  for (const PlanClass& cls : plan_classes()) {
    TensorPlan p = c.quant.*cls.plan;
    if (p.scheme == Scheme::IntRow) {
      if (p.quant.bits <= kMinBits) continue;
      --p.quant.bits;
    } else {
      p = TensorPlan{Scheme::IntRow, RowQuantizer{8}};
    }
    out.push_back(plan_move(c, cls, p));
  }
  return out;
}

// The shrinking moves undone one step at a time, back towards `start`.
std::vector<Move> undoing_moves(const ExportChoice& c, const ExportChoice& start) {
  std::vector<Move> out;
  if (c.prune_frac > start.prune_frac) out.push_back(prune_move(c, std::max(start.prune_frac, c.prune_frac - kPruneStep)));
  for (const PlanClass& cls : plan_classes()) {
    const TensorPlan &p = c.quant.*cls.plan, &s = start.quant.*cls.plan;
    if (p == s) continue;
    TensorPlan back = p;
    if (s.scheme == Scheme::IntRow && p.quant.bits < s.quant.bits) ++back.quant.bits;
    else if (s.scheme != Scheme::IntRow && p.quant.bits < 8) ++back.quant.bits;
    else back = s;
    out.push_back(plan_move(c, cls, back));
  }
  return out;
}

// Every single change that spends bytes on accuracy: less pruning, one bit
// more for a class, int8 -> fp16.
std::vector<Move> growing_moves(const ExportChoice& c) {
  std::vector<Move> out;
  if (c.prune_frac > 0) out.push_back(prune_move(c, std::max(0.0, c.prune_frac - kPruneStep)));
  for (const PlanClass& cls : plan_classes()) {
    TensorPlan p = c.quant.*cls.plan;
    if (p.scheme != Scheme::IntRow) continue;
    if (p.quant.bits < 8) ++p.quant.bits;
    else p = TensorPlan{Scheme::Fp16};
    out.push_back(plan_move(c, cls, p));
  }
  return out;
}

std::string fmt_bytes(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", b);
  return buf;
}

bool same_choice(const ExportChoice& x, const ExportChoice& y) {
  if (x.prune_frac != y.prune_frac) return false;
  for (const PlanClass& cls : plan_classes())
    if (!(x.quant.*cls.plan == y.quant.*cls.plan)) return false;
  return true;
}

// The fitting run: predictions from the Evaluator, scaled by the ratio of the
// last real compression, and real compressions to confirm them.
class Fitter {
 public:
  Fitter(Evaluator& ev, const ExportChoice& start, const FitOptions& opts, Codec codec, std::uint64_t header_bytes, RunLog& log)
      : ev_(ev), codec_(codec), header_(header_bytes), log_(log), target_(static_cast<double>(opts.target())),
        start_sse_(ev.totals(start).sse) {}

  // Compresses the payload of `c` for real; returns the artifact bytes and recalibrates the predictions.
  double confirm(const ExportChoice& c, FitResult& r) {
    r.tensors = ev_.tensors(c);
    r.payload = serialize_tensors(r.tensors);
    log_.progress("compressing the payload (" + std::to_string(r.payload.size()) + " bytes)...");
    r.packed = compress(r.payload, codec_);
    r.choice = c;
    ++real_;
    const double artifact = static_cast<double>(r.packed.size() + header_);
    ratio_ = artifact / std::max(ev_.totals(c).bytes, 1.0);
    return artifact;
  }

  // Greedy over `moves`: the move with the best error per byte among those
  // `allowed`, applied until `done` or no move is left. `shrink` picks the
  // least added error per byte saved; otherwise the most error removed per byte spent.
  template <typename Moves, typename Done>
  ExportChoice greedy(ExportChoice cur, Moves moves, bool shrink, Done done, const char* verb) {
    while (!done(cur)) {
      const Evaluator::Totals now = ev_.totals(cur);
      std::vector<Move> ms = moves(cur);
      const Move* best = nullptr;
      double best_score = 0, best_bytes = 0, best_sse = 0;
      for (const Move& m : ms) {
        log_.progress(std::string("fit: trying ") + m.what);
        const Evaluator::Totals t = ev_.totals(m.choice);
        const double bytes = (now.bytes - t.bytes) * ratio_ * (shrink ? 1 : -1);  // saved, or spent
        if (bytes < 1.0) continue;
        if (!shrink && t.bytes * ratio_ > target_) continue;
        const double score = (shrink ? std::max(t.sse - now.sse, 0.0) : now.sse - t.sse) / bytes;
        if (!best || (shrink ? score < best_score : score > best_score))
          best = &m, best_score = score, best_bytes = t.bytes * ratio_, best_sse = t.sse;
      }
      if (!best) break;
      cur = best->choice;
      ev_.forget_other_prunings(cur.prune_frac);
      log_.line(std::string("fit: ") + verb + " " + best->what + ": predicted " + fmt_bytes(best_bytes) +
                " bytes, added squared error " + shortest_decimal(best_sse - start_sse_) + ", margin " +
                fmt_bytes(target_ - best_bytes) + " bytes");
    }
    return cur;
  }

  // From a confirmed choice `cur` (result r, `artifact` bytes): applies the
  // moves that remove the most error per byte spent while the prediction
  // fits, confirms, and keeps the result only if it really fits. Two rounds.
  template <typename Moves>
  ExportChoice spend(ExportChoice cur, Moves moves, const char* verb, FitResult& r, double& artifact) {
    for (int round = 0; round < 2; ++round) {
      const ExportChoice next = greedy(cur, moves, false, [](const ExportChoice&) { return false; }, verb);
      if (same_choice(next, cur)) break;
      FitResult trial;
      const double bytes = confirm(next, trial);
      if (bytes > target_) {
        log_.line(std::string("fit: ") + verb + " went over by " + fmt_bytes(bytes - target_) +
                  " bytes; keeping the previous choice");
        break;
      }
      cur = next;
      r = std::move(trial);
      artifact = bytes;
    }
    return cur;
  }

  double predicted(const ExportChoice& c) { return ev_.totals(c).bytes * ratio_; }
  double target() const { return target_; }
  double start_sse() const { return start_sse_; }
  int real_compressions() const { return real_; }

 private:
  Evaluator& ev_;
  Codec codec_;
  std::uint64_t header_;
  RunLog& log_;
  double target_, start_sse_, ratio_ = 1.0;
  int real_ = 0;
};

}  // namespace

std::string describe_choice(const ExportChoice& c) {
  std::string out = "PRUNE_FRAC=" + shortest_decimal(c.prune_frac);
  for (const PlanClass& cls : plan_classes()) out += std::string(" ") + cls.key + "=" + format_tensor_plan(c.quant.*cls.plan);
  return out;
}

FitResult fit_export(const std::vector<NamedTensor>& weights, const std::map<std::string, at::Tensor>& hessians,
                     const ExportChoice& start, const FitOptions& opts, Codec codec, std::uint64_t header_bytes,
                     RunLog& log) {
  at::NoGradGuard no_grad;
  Evaluator ev(weights, hessians, codec);
  Fitter fit(ev, start, opts, codec, header_bytes, log);
  const double target = fit.target();
  FitResult r;
  double artifact = fit.confirm(start, r);
  auto log_fits = [&] {
    log.line("fit: fits: artifact " + fmt_bytes(artifact) + " bytes, margin " + fmt_bytes(target - artifact) +
             " bytes under BUDGET_BYTES - FIT_MARGIN_BYTES - code bytes = " + fmt_bytes(target));
  };
  if (artifact > target && opts.enabled) {
    log.line("fit: artifact " + fmt_bytes(artifact) + " bytes + code " + std::to_string(opts.code_bytes) +
             " is over BUDGET_BYTES=" + std::to_string(opts.budget) + " - FIT_MARGIN_BYTES=" + std::to_string(opts.margin) +
             " by " + fmt_bytes(artifact - target) + " bytes; fitting (EXPORT_FIT=0 turns this off)");
    // Phase 1: shrink until the prediction fits, confirm, repeat while the real size is over.
    ExportChoice cur = start;
    while (artifact > target) {
      if (fit.real_compressions() > kMaxRealCompressions)
        throw FitError("the export is still " + fmt_bytes(artifact - target) + " bytes over its target after " +
                       std::to_string(fit.real_compressions()) +
                       " fitted attempts: raise FIT_MARGIN_BYTES or set the QUANT_* plans by hand");
      cur = fit.greedy(cur, shrinking_moves, true, [&](const ExportChoice& c) { return fit.predicted(c) <= target; }, "shrink");
      if (fit.predicted(cur) > target)
        throw FitError("no export choice fits: the smallest reachable artifact is " + fmt_bytes(fit.predicted(cur)) +
                       " bytes (predicted), " + fmt_bytes(fit.predicted(cur) - target) + " over BUDGET_BYTES=" +
                       std::to_string(opts.budget) + " minus FIT_MARGIN_BYTES=" + std::to_string(opts.margin) + " and " +
                       std::to_string(opts.code_bytes) +
                       " code bytes; make the model smaller (NUM_LAYERS, MODEL_DIM, MLP_MULT, BIGRAM_VOCAB_SIZE) or raise BUDGET_BYTES");
      artifact = fit.confirm(cur, r);
    }
    // Phase 2: the real size may have come out well under the prediction;
    // undo the cheapest-to-keep changes while the prediction still fits.
    fit.spend(cur, [&](const ExportChoice& c) { return undoing_moves(c, start); }, "undo", r, artifact);
    log_fits();
  } else if (opts.enabled && opts.spend_spare && artifact < target) {
    // Under the budget: spend the spare bytes where they remove the most error per byte.
    log.line("fit: artifact " + fmt_bytes(artifact) + " bytes leaves " + fmt_bytes(target - artifact) +
             " bytes of the budget; spending them (FIT_SPEND_SPARE=1)");
    fit.spend(start, growing_moves, "spend", r, artifact);
    log_fits();
  }
  r.added_sse = ev.totals(r.choice).sse - fit.start_sse();
  r.changed = !same_choice(r.choice, start);
  return r;
}

}  // namespace pgolf
