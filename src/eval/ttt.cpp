#include "pgolf/eval/ttt.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "pgolf/eval/lora.h"
#include "pgolf/optim/optim.h"

namespace pgolf {

std::vector<Document> split_documents(const at::Tensor& val, std::int64_t bos) {
  const at::Tensor v = val.contiguous();
  const std::int64_t* t = v.data_ptr<std::int64_t>();
  const std::int64_t N = v.numel();
  std::vector<Document> docs;
  std::int64_t start = 0;
  for (std::int64_t i = 1; i < N; ++i)
    if (t[i] == bos) {
      docs.push_back({start, i - start});
      start = i;
    }
  if (N - 1 > start) docs.push_back({start, N - 1 - start});
  return docs;
}

std::vector<std::vector<std::size_t>> ttt_batches(const std::vector<Document>& docs, std::int64_t batch_docs) {
  std::vector<std::size_t> order(docs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return docs[a].targets > docs[b].targets; });
  std::vector<std::vector<std::size_t>> batches;
  for (std::size_t i = 0; i < order.size(); i += static_cast<std::size_t>(batch_docs))
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(i),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + static_cast<std::size_t>(batch_docs))));
  return batches;
}

namespace {

using Clock = std::chrono::steady_clock;

// Chunk k of a batch, as host-side indices. Row i (the i-th longest document
// with targets left) holds window inputs val[start + s .. start + e - 1] with
// e = min((k+1)C, n), s = max(0, e - context), right-padded by repeating its
// last input; its scored targets are window offsets [kC - s, e - s).
struct ChunkPlan {
  std::int64_t rows = 0, len = 0;
  std::vector<std::int64_t> inputs;       // [rows * len] positions in val
  std::vector<std::int64_t> scored_flat;  // offsets into [rows * len]
  std::vector<std::int64_t> scored_pos;   // their target positions in val
  std::vector<double> weights;            // [rows * len]: 1/|chunk| at scored offsets of rows that train
  bool trains = false;
};

// The windows of chunk k: rows, the padded length, and each row's [s, e).
struct ChunkWindows {
  std::int64_t rows = 0, len = 0;
  std::vector<std::int64_t> s, e;
};

ChunkWindows chunk_windows(const std::vector<Document>& batch, std::int64_t k, std::int64_t C, std::int64_t context) {
  ChunkWindows w;
  const std::int64_t lo = k * C;
  while (w.rows < static_cast<std::int64_t>(batch.size()) && batch[static_cast<std::size_t>(w.rows)].targets > lo) ++w.rows;
  for (std::int64_t i = 0; i < w.rows; ++i) {
    w.e.push_back(std::min(lo + C, batch[static_cast<std::size_t>(i)].targets));
    w.s.push_back(std::max<std::int64_t>(0, w.e.back() - context));
    w.len = std::max(w.len, w.e.back() - w.s.back());
  }
  return w;
}

ChunkPlan plan_chunk(const std::vector<Document>& batch, std::int64_t k, std::int64_t C, std::int64_t context) {
  ChunkPlan p;
  const std::int64_t lo = k * C;
  const ChunkWindows w = chunk_windows(batch, k, C, context);
  const std::vector<std::int64_t>&s = w.s, &e = w.e;
  p.rows = w.rows;
  p.len = w.len;
  p.inputs.resize(static_cast<std::size_t>(p.rows * p.len));
  p.weights.assign(p.inputs.size(), 0.0);
  for (std::size_t i = 0; i < s.size(); ++i) {
    const std::int64_t base = batch[i].start + s[i], n = e[i] - s[i];
    const bool trains = batch[i].targets > lo + C;
    p.trains = p.trains || trains;
    for (std::int64_t t = 0; t < p.len; ++t) {
      const auto flat = static_cast<std::int64_t>(i) * p.len + t;
      p.inputs[static_cast<std::size_t>(flat)] = base + std::min(t, n - 1);
      if (t < lo - s[i] || t >= n) continue;
      p.scored_flat.push_back(flat);
      p.scored_pos.push_back(base + t + 1);
      if (trains) p.weights[static_cast<std::size_t>(flat)] = 1.0 / static_cast<double>(e[i] - lo);
    }
  }
  return p;
}

// Tokens one chunk's forward pass processes: the ETA's unit of work.
std::int64_t batch_cost(const std::vector<Document>& batch, std::int64_t C, std::int64_t context) {
  std::int64_t cost = 0;
  for (std::int64_t k = 0; k * C < batch.front().targets; ++k) {
    const ChunkWindows w = chunk_windows(batch, k, C, context);
    cost += w.rows * w.len;
  }
  return cost;
}

at::Tensor on(const std::vector<std::int64_t>& v, const at::Device& d) {
  return at::tensor(at::ArrayRef<std::int64_t>(v), at::kLong).to(d);
}

// While alive: the model's weights take no gradients (only the adapters do).
class FrozenWeights {
 public:
  explicit FrozenWeights(const GPT& model) : model_(model) { trainable(false); }
  ~FrozenWeights() { trainable(true); }
  FrozenWeights(const FrozenWeights&) = delete;
  FrozenWeights& operator=(const FrozenWeights&) = delete;
  void trainable(bool on) const {
    for (const auto& p : model_.parameters()) p.tensor.requires_grad_(on);
  }

 private:
  const GPT& model_;
};

class TttRun {
 public:
  TttRun(GPT& model, const at::Tensor& val, const at::Tensor& val_bytes, const TttOptions& opts, Dist& dist)
      : model_(model), opts_(opts), dist_(dist), device_(model.options().device), tokens_(val.to(device_)),
        bytes_(val_bytes.to(device_)), docs_(split_documents(val.cpu(), kBosId)), batches_(ttt_batches(docs_, opts.ttt.ttt_batch_docs)),
        frozen_(model) {
    const auto dbl = at::TensorOptions().dtype(at::kDouble).device(device_);
    scores_.target_nll = at::zeros({val.numel()}, dbl);
    costs_.assign(batches_.size(), 0);
    scores_.times_scored = at::zeros({val.numel()}, dbl.dtype(at::kInt));
    nll_ = at::zeros({}, dbl);
    byte_sum_ = at::zeros({}, dbl.dtype(at::kLong));
    for (std::size_t j = static_cast<std::size_t>(dist.rank()); j < batches_.size(); j += static_cast<std::size_t>(dist.world_size())) {
      costs_[j] = batch_cost(batch(j), opts.ttt.ttt_chunk, opts.ttt.ttt_context);
      cost_total_ += costs_[j];
      docs_total_ += static_cast<std::int64_t>(batches_[j].size());
    }
  }

  TttScores run(const std::function<void(const TttProgress&)>& progress) {
    const std::size_t world = static_cast<std::size_t>(dist_.world_size());
    const std::size_t rounds = (batches_.size() + world - 1) / world;
    std::size_t next_phase = 0;
    std::int64_t scored_docs = 0;  // over all ranks
    const auto t0 = Clock::now();
    bool adapt = true;
    for (std::size_t r = 0; r < rounds; ++r) {
      const std::size_t j = r * world + static_cast<std::size_t>(dist_.rank());
      if (j < batches_.size()) {
        score_batch(j, adapt);
        done_docs_ += static_cast<std::int64_t>(batches_[j].size());
        (adapt ? scores_.adapted_docs : scores_.unadapted_docs) += static_cast<std::int64_t>(batches_[j].size());
        cost_done_ += costs_[j];
        if (progress) progress(report(t0));
      }
      for (std::size_t b = r * world; b < std::min(batches_.size(), (r + 1) * world); ++b)
        scored_docs += static_cast<std::int64_t>(batches_[b].size());
      if (next_phase < opts_.ttt.ttt_global_after.size() && scored_docs >= opts_.ttt.ttt_global_after[next_phase]) {
        global_phase(std::min(batches_.size(), (r + 1) * world));
        ++scores_.global_phases;
        while (next_phase < opts_.ttt.ttt_global_after.size() && scored_docs >= opts_.ttt.ttt_global_after[next_phase]) ++next_phase;
      }
      if (adapt && opts_.budget_seconds > 0) adapt = !budget_spent(t0);
    }
    model_.set_adapter({});
    scores_.sums = {nll_.item<double>(), static_cast<double>(count_), static_cast<double>(byte_sum_.item<std::int64_t>())};
    return scores_;
  }

 private:
  std::vector<Document> batch(std::size_t j) const {
    std::vector<Document> b;
    for (std::size_t i : batches_[j]) b.push_back(docs_[i]);
    return b;
  }

  TttProgress report(Clock::time_point t0) const {
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double left = cost_done_ > 0 ? s * static_cast<double>(cost_total_ - cost_done_) / static_cast<double>(cost_done_) : 0;
    return {done_docs_, docs_total_, s, left};
  }

  // Whether any rank has spent the budget: the same answer on every rank.
  bool budget_spent(Clock::time_point t0) {
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    at::Tensor over = at::full({}, s >= opts_.budget_seconds ? 1.0 : 0.0, at::TensorOptions().dtype(at::kDouble).device(device_));
    dist_.all_reduce_max(over, "TTT budget check");
    return over.item<double>() > 0;
  }

  // Fresh adapters for batch j; each chunk scored, then (with `adapt`) one step.
  void score_batch(std::size_t j, bool adapt) {
    const std::vector<Document> docs = batch(j);
    BatchedLora lora(model_, opts_.ttt.ttt_targets, opts_.ttt.ttt_rank, opts_.ttt.ttt_alpha, static_cast<std::int64_t>(docs.size()),
                     opts_.seed * 1000003ULL + j);
    model_.set_adapter(lora.adapter());
    AdamW adam(lora.parameters(), {opts_.ttt.ttt_beta1, opts_.ttt.ttt_beta2, opts_.ttt.ttt_eps, opts_.ttt.ttt_wd});
    for (std::int64_t k = 0; k * opts_.ttt.ttt_chunk < docs.front().targets; ++k) {
      const ChunkPlan p = plan_chunk(docs, k, opts_.ttt.ttt_chunk, opts_.ttt.ttt_context);
      const bool train = adapt && p.trains;
      const at::Tensor pos = on(p.inputs, device_);
      const at::Tensor x = tokens_.index_select(0, pos).view({p.rows, p.len});
      const at::Tensor y = tokens_.index_select(0, pos + 1).view({p.rows, p.len});
      std::optional<at::NoGradGuard> no_grad;
      if (!train) no_grad.emplace();
      const at::Tensor nll = model_.token_nll(x, y);
      add_scores(nll.detach().reshape({-1}), p);
      if (!train) continue;
      for (const auto& t : lora.parameters()) t.mutable_grad() = at::Tensor();
      const at::Tensor w = at::tensor(at::ArrayRef<double>(p.weights), at::kDouble).to(device_, nll.scalar_type());
      (nll.reshape({-1}) * w).sum().backward();
      adam.step(opts_.ttt.ttt_lr);
    }
    model_.set_adapter({});
  }

  void add_scores(const at::Tensor& nll_flat, const ChunkPlan& p) {
    const at::Tensor picked = nll_flat.index_select(0, on(p.scored_flat, device_)).to(at::kDouble);
    const at::Tensor pos = on(p.scored_pos, device_);
    nll_ += picked.sum();
    byte_sum_ += bytes_.index_select(0, pos).sum();
    scores_.target_nll.index_copy_(0, pos, picked);
    scores_.times_scored.index_add_(0, pos, at::ones({pos.numel()}, scores_.times_scored.options()));
    count_ += static_cast<std::int64_t>(p.scored_pos.size());
  }

  // One epoch of SGD with momentum over the documents of batches [0, upto),
  // split over ranks like training data; every rank applies the averaged step.
  void global_phase(std::size_t upto) {
    std::vector<std::int64_t> stream;  // positions in val
    for (std::size_t b = 0; b < upto; ++b)
      for (std::size_t i : batches_[b])
        for (std::int64_t t = 0; t <= docs_[i].targets; ++t) stream.push_back(docs_[i].start + t);
    const std::int64_t L = opts_.global_seq_len, bs = opts_.ttt.ttt_global_batch_seqs, world = dist_.world_size();
    const std::int64_t seqs = (static_cast<std::int64_t>(stream.size()) - 1) / L;
    const std::int64_t steps = seqs / (world * bs);
    if (steps == 0) return;
    frozen_.trainable(true);
    std::vector<at::Tensor> params, momentum;
    for (const auto& p : model_.parameters()) {
      params.push_back(p.tensor);
      momentum.push_back(at::zeros_like(p.tensor));
    }
    {
      GradientSync sync(dist_, params);
      for (std::int64_t s = 0; s < steps; ++s) {
        // Sequence q: inputs stream[qL .. qL+L-1], targets stream[qL+1 .. qL+L].
        std::vector<std::int64_t> in, out;
        const std::int64_t first = (s * world + dist_.rank()) * bs;
        for (std::int64_t q = first; q < first + bs; ++q) {
          in.insert(in.end(), stream.begin() + q * L, stream.begin() + (q + 1) * L);
          out.insert(out.end(), stream.begin() + q * L + 1, stream.begin() + (q + 1) * L + 1);
        }
        const at::Tensor x = tokens_.index_select(0, on(in, device_)).view({bs, L});
        const at::Tensor y = tokens_.index_select(0, on(out, device_)).view({bs, L});
        for (auto& p : params) p.mutable_grad() = at::Tensor();
        at::Tensor loss = model_.loss(x, y);
        sync.arm();
        loss.backward();
        sync.finish();
        clip_grad_norm(params, opts_.ttt.ttt_global_clip);
        // buf = m*buf + g;  p -= lr_s * buf,  lr_s = lr * (1 + cos(pi s / steps)) / 2
        const double lr = opts_.ttt.ttt_global_lr * 0.5 * (1.0 + std::cos(std::acos(-1.0) * static_cast<double>(s) / static_cast<double>(steps)));
        at::NoGradGuard no_grad;
        for (std::size_t i = 0; i < params.size(); ++i) {
          momentum[i].mul_(opts_.ttt.ttt_global_momentum).add_(params[i].grad());
          params[i].add_(momentum[i], -lr);
        }
      }
    }
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    frozen_.trainable(false);
  }

  GPT& model_;
  const TttOptions& opts_;
  Dist& dist_;
  const at::Device device_;
  const at::Tensor tokens_, bytes_;
  const std::vector<Document> docs_;
  const std::vector<std::vector<std::size_t>> batches_;
  FrozenWeights frozen_;
  TttScores scores_;
  at::Tensor nll_, byte_sum_;
  std::vector<std::int64_t> costs_;  // batch_cost of each batch this rank runs (0 for the others)
  std::int64_t count_ = 0, done_docs_ = 0, docs_total_ = 0, cost_done_ = 0, cost_total_ = 0;
};

}  // namespace

TttScores evaluate_ttt(GPT& model, const at::Tensor& val, const at::Tensor& val_bytes, const TttOptions& opts, Dist& dist,
                       const std::function<void(const TttProgress&)>& progress) {
  TttRun run(model, val, val_bytes, opts, dist);
  return run.run(progress);
}

}  // namespace pgolf
