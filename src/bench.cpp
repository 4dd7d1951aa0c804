#include "pgolf/bench.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>

#include "pgolf/data.h"
#include "pgolf/model.h"
#include "pgolf/optim.h"
#include "pgolf/runtime.h"

namespace pgolf {

BenchResult run_bench(const Config& cfg, int steps, int warmup) {
  using Clock = std::chrono::steady_clock;
  const at::Device device = select_device(cfg.device);
  auto timed = [&](auto&& f) {
    synchronize(device);
    auto t = Clock::now();
    f();
    synchronize(device);
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  BenchResult r;
  r.device = device.str();
  r.tokens_per_step = cfg.train_batch_tokens;
  const std::int64_t grad_accum = grad_accum_steps(1), rows = cfg.train_batch_tokens / grad_accum / cfg.train_seq_len;

  std::unique_ptr<GPT> model;
  r.build_ms = timed([&] { model = std::make_unique<GPT>(cfg, model_options_for(device)); });
  r.params = model->num_params();
  Optimizers opt(*model, cfg, ns_dtype_for(device));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(cfg.seed));
  std::vector<at::Tensor> xs, ys;
  for (std::int64_t m = 0; m < grad_accum; ++m) {
    xs.push_back(at::randint(cfg.vocab_size, {rows, cfg.train_seq_len}, gen, at::kLong).to(device));
    ys.push_back(at::randint(cfg.vocab_size, {rows, cfg.train_seq_len}, gen, at::kLong).to(device));
  }
  for (int s = 0; s < warmup + steps; ++s) {
    double fwd = 0, bwd = 0;
    const double total = timed([&] {
      opt.zero_grad();
      for (std::int64_t m = 0; m < grad_accum; ++m) {
        at::Tensor loss;
        fwd += timed([&] { loss = model->loss(xs[m], ys[m]); });
        bwd += timed([&] { (loss / static_cast<double>(grad_accum)).backward(); });
      }
    });
    const double optim = timed([&] { opt.step(s, 1.0); });
    if (s == 0) r.first_step_ms = total + optim;
    if (s < warmup) continue;
    r.forward_ms += fwd / steps;
    r.backward_ms += bwd / steps;
    r.optimizer_ms += optim / steps;
  }
  r.steps = steps;
  r.memory = peak_memory_report(device);
  return r;
}

std::string format_bench(const BenchResult& r) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "bench device:%s params:%lld tokens_per_step:%lld steps:%lld\n"
                "step_ms:%.1f tokens_per_s:%.0f\n"
                "phase_ms forward:%.1f backward:%.1f optimizer:%.1f\n"
                "build_ms:%.0f first_step_ms:%.0f\n%s\n",
                r.device.c_str(), static_cast<long long>(r.params), static_cast<long long>(r.tokens_per_step),
                static_cast<long long>(r.steps), r.step_ms(), r.tokens_per_second(), r.forward_ms, r.backward_ms,
                r.optimizer_ms, r.build_ms, r.first_step_ms, r.memory.c_str());
  return buf;
}

}  // namespace pgolf
