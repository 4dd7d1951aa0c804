#include "pgolf/optim/schedule.h"

#include <algorithm>

namespace pgolf {

namespace {

double warmdown(const ScheduleConfig& cfg, std::int64_t step, double elapsed_ms, double step_ms) {
  if (cfg.warmdown_iters <= 0) return 1.0;
  const double W = static_cast<double>(cfg.warmdown_iters);
  if (cfg.training_seconds() <= 0) {
    const std::int64_t start = std::max<std::int64_t>(cfg.iterations - cfg.warmdown_iters, 0);
    if (step < start || step >= cfg.iterations) return 1.0;
    return std::max(static_cast<double>(cfg.iterations - step) / W, 0.0);
  }
  const double warmdown_ms = W * step_ms;
  const double remaining_ms = std::max(cfg.training_seconds() * 1000.0 - elapsed_ms, 0.0);
  return remaining_ms <= warmdown_ms ? remaining_ms / std::max(warmdown_ms, 1e-9) : 1.0;
}

double hold_decay(const ScheduleConfig& cfg, std::int64_t step, double elapsed_ms) {
  const double frac = cfg.training_seconds() > 0 ? elapsed_ms / (cfg.training_seconds() * 1000.0)
                                                    : static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(cfg.iterations, 1));
  if (frac < cfg.lr_hold_frac) return 1.0;
  return std::max((1.0 - frac) / (1.0 - cfg.lr_hold_frac), 0.0);
}

}  // namespace

double lr_multiplier(const ScheduleConfig& cfg, std::int64_t step, double elapsed_ms, double step_ms) {
  const double m = cfg.lr_schedule == LrSchedule::HoldDecay ? hold_decay(cfg, step, elapsed_ms) : warmdown(cfg, step, elapsed_ms, step_ms);
  return std::max(m, cfg.min_lr);
}

std::string schedule_note(const ScheduleConfig& cfg) {
  if (cfg.lr_schedule != LrSchedule::Warmdown || cfg.training_seconds() > 0 || cfg.warmdown_iters <= 0 ||
      cfg.warmdown_iters < cfg.iterations)
    return "";
  const std::string w = std::to_string(cfg.warmdown_iters), n = std::to_string(cfg.iterations);
  return "schedule: WARMDOWN_ITERS=" + w + " >= ITERATIONS=" + n + ": the warm-down covers the whole run, the learning " +
         "rate decays from the first step (multiplier " + n + "/" + w + " at step 0); lower WARMDOWN_ITERS for a constant phase";
}

bool run_fraction_reached(const ScheduleConfig& cfg, double frac, std::int64_t step, double elapsed_ms) {
  if (cfg.training_seconds() > 0) return elapsed_ms >= frac * cfg.training_seconds() * 1000.0;
  return static_cast<double>(step) >= frac * static_cast<double>(cfg.iterations);
}

}  // namespace pgolf
