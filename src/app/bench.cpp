#include "pgolf/app/bench.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <numeric>
#include <cstdio>

#include "pgolf/data/data.h"
#include "pgolf/optim/optim.h"
#include "pgolf/core/runtime.h"
#include "pgolf/train/step.h"

namespace pgolf {

double training_flops_per_token(const GPT& model, std::int64_t seq_len) {
  double matmul = 0;
  for (const auto& p : model.parameters()) {
    const ParamGroup g = param_group(p.name, p.tensor);
    if (g == ParamGroup::Muon || p.name == "tok_emb.weight") matmul += static_cast<double>(p.tensor.numel());
  }
  const double attention = static_cast<double>(model.config().num_layers) * static_cast<double>(seq_len) *
                           static_cast<double>(model.config().model_dim);
  return 6 * matmul + 6 * attention;
}

double known_peak_tflops(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H100") && has("PCIe")) return 756.0;
  if (has("H100") || has("H200")) return 989.4;
  if (has("A100")) return 312.0;
  return 0;
}

BenchResult run_bench(const Config& cfg, const BenchOptions& opts) {
  using Clock = std::chrono::steady_clock;
  const at::Device device = select_device(cfg.runtime.device);
  auto timed = [&](auto&& f) {
    synchronize(device);
    auto t = Clock::now();
    f();
    synchronize(device);
    return ms_since(t);
  };
  BenchResult r;
  r.device = device.str();
  r.device_name = device_name(device);
  r.world_size = opts.world_size;
  r.micro_steps = grad_accum_steps(opts.world_size);
  r.tokens_per_step = cfg.train.train_batch_tokens / opts.world_size;
  // Whole sequences: the configuration checks that TRAIN_BATCH_TOKENS is a multiple of 8 * TRAIN_SEQ_LEN.
  const std::int64_t rows = r.tokens_per_step / r.micro_steps / cfg.train.train_seq_len;

  std::unique_ptr<GPT> model;
  r.build_ms = timed([&] { model = std::make_unique<GPT>(cfg.model, model_options_for(device, static_cast<std::uint64_t>(cfg.run.seed), cfg.runtime.fused_kernels)); });
  r.params = model->num_params();
  r.flops_per_token = training_flops_per_token(*model, cfg.train.train_seq_len);
  r.peak_tflops = opts.peak_tflops > 0 ? opts.peak_tflops : known_peak_tflops(r.device_name);
  // Rank 0's share of Newton-Schulz; the all-reduce that would gather the rest is left out.
  Optimizers opt(*model, cfg.optim, ns_dtype_for(device), MuonSharding{0, opts.world_size, [](at::Tensor&) {}});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(cfg.run.seed));
  std::vector<at::Tensor> xs, ys;
  for (std::int64_t m = 0; m < r.micro_steps; ++m) {
    xs.push_back(at::randint(cfg.model.vocab_size, {rows, cfg.train.train_seq_len}, gen, at::kLong).to(device));
    ys.push_back(at::randint(cfg.model.vocab_size, {rows, cfg.train.train_seq_len}, gen, at::kLong).to(device));
  }
  std::size_t next_micro = 0;
  const NextBatch next = [&] {
    const MicroBatch b{xs[next_micro], ys[next_micro]};
    next_micro = (next_micro + 1) % xs.size();
    return b;
  };
  // Eager steps through the training's own step, each phase synchronised and timed.
  TrainStep eager(*model, opt, r.micro_steps, nullptr);
  double phase_ms[3] = {0, 0, 0};
  Clock::time_point phase_start;
  eager.observe_phases([&](StepPhase phase, bool begins) {
    synchronize(device);
    if (begins)
      phase_start = Clock::now();
    else
      phase_ms[static_cast<int>(phase)] += ms_since(phase_start);
  });
  std::int64_t s = 0;
  for (; s < opts.warmup + opts.steps; ++s) {
    if (s == opts.warmup) std::fill(std::begin(phase_ms), std::end(phase_ms), 0.0);
    const double total = timed([&] { eager.run(next, s, 1.0); });
    if (s == 0) {
      r.first_step_ms = total;
      r.launch_to_first_step_ms = ms_since_process_start();
    }
  }
  r.forward_ms = phase_ms[static_cast<int>(StepPhase::Forward)] / opts.steps;
  r.backward_ms = phase_ms[static_cast<int>(StepPhase::Backward)] / opts.steps;
  r.optimizer_ms = phase_ms[static_cast<int>(StepPhase::Optimizer)] / opts.steps;
  // Steps back to back through the same step (captured with CUDA_GRAPHS on
  // CUDA; the capture itself is left out of the time).
  TrainStep step(*model, opt, r.micro_steps, nullptr, step_recorder(cfg.runtime.cuda_graphs, device),
                 [&](const std::string& note) { r.notes.push_back(note); });
  if (step.graphs()) step.run(next, s++, 1.0);
  r.captured = step.graphs();
  r.step_ms = timed([&] {
                for (int i = 0; i < opts.steps; ++i) step.run(next, s++, 1.0);
              }) /
              opts.steps;
  r.steps = opts.steps;
  r.memory = peak_memory_report(device);
  return r;
}

std::string format_bench(const BenchResult& r) {
  char buf[1024];
  char mfu[160];
  if (r.peak_tflops > 0)
    std::snprintf(mfu, sizeof mfu, "mfu:%.1f%% (of %.1f TFLOP/s bf16 peak)", 100 * r.mfu(), r.peak_tflops);
  else
    std::snprintf(mfu, sizeof mfu, "mfu:n/a (no known peak for this device; pass --peak-tflops)");
  std::snprintf(buf, sizeof buf,
                "bench device:%s (%s) params:%lld\n"
                "share: rank 0 of %lld: tokens_per_step:%lld micro_steps:%lld steps:%lld\n"
                "step_ms:%.2f tokens_per_s:%.0f %s flops_per_token:%.4g (steps %s)\n"
                "phase_ms forward:%.2f backward:%.2f optimizer:%.2f (eager, each phase synchronised)\n"
                "build_ms:%.0f first_step_ms:%.0f launch_to_first_step_ms:%.0f\n%s\n",
                r.device.c_str(), r.device_name.c_str(), static_cast<long long>(r.params),
                static_cast<long long>(r.world_size), static_cast<long long>(r.tokens_per_step),
                static_cast<long long>(r.micro_steps), static_cast<long long>(r.steps), r.step_ms, r.tokens_per_second(),
                mfu, r.flops_per_token, r.captured ? "replayed from a CUDA graph" : "eager", r.forward_ms, r.backward_ms,
                r.optimizer_ms, r.build_ms, r.first_step_ms, r.launch_to_first_step_ms, r.memory.c_str());
  std::string out = buf;
  for (const auto& note : r.notes) out += note + "\n";
  return out;
}

std::string format_bench_ratio(const BenchResult& a, const BenchResult& b) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "ratio (second / first): tokens_per_s:x%.3f step_ms:x%.3f forward:x%.3f backward:x%.3f mfu:%s\n",
                b.tokens_per_second() / a.tokens_per_second(), b.step_ms / a.step_ms, b.forward_ms / a.forward_ms,
                b.backward_ms / a.backward_ms, a.mfu() > 0 ? (std::to_string(b.mfu() / a.mfu()).substr(0, 5)).c_str() : "n/a");
  return buf;
}

namespace {

// "mean:M min:A max:B" of `values` (not empty).
std::string spread(const std::vector<double>& values, const char* format) {
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  char buf[160];
  const std::string f = std::string("mean:") + format + " min:" + format + " max:" + format;
  std::snprintf(buf, sizeof buf, f.c_str(), mean, *lo, *hi);
  return buf;
}

}  // namespace

std::string format_bench_repeats(const std::vector<BenchResult>& runs) {
  std::vector<double> ms;
  for (const BenchResult& r : runs) ms.push_back(r.step_ms);
  return "step_ms over " + std::to_string(runs.size()) + " runs: " + spread(ms, "%.2f") + "\n";
}

std::string format_bench_repeats(const std::vector<std::pair<BenchResult, BenchResult>>& pairs) {
  std::vector<double> step, tokens;
  for (const auto& [a, b] : pairs) {
    step.push_back(b.step_ms / a.step_ms);
    tokens.push_back(b.tokens_per_second() / a.tokens_per_second());
  }
  return "ratio (second / first) over " + std::to_string(pairs.size()) + " pairs: step_ms " + spread(step, "x%.3f") +
         " tokens_per_s " + spread(tokens, "x%.3f") + "\n";
}

}  // namespace pgolf
