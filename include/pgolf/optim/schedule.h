// The run's timeline (docs/MODEL.md ("The optimiser")): the learning-rate
// multiplier over it and how far through it a step is.
#pragma once
#include <cstdint>
#include <string>

#include "pgolf/config/config.h"

namespace pgolf {

// LR multiplier, floored at MIN_LR. LR_SCHEDULE=warmdown (the seeds'): 1
// until the warm-down, then linear to 0.
//  - no cap (MAX_WALLCLOCK_SECONDS=0): over the last WARMDOWN_ITERS of ITERATIONS,
//    mult = (ITERATIONS - step) / WARMDOWN_ITERS;
//  - with a cap (ScheduleConfig::training_seconds: MAX_WALLCLOCK_SECONDS less
//    the calibration reserve): in time, mult = remaining_ms / (WARMDOWN_ITERS * step_ms) once
//    remaining_ms <= WARMDOWN_ITERS * step_ms, step_ms being the average step
//    time so far without start-up costs.
// LR_SCHEDULE=hold_decay (the 1.0611 record): with frac = elapsed / cap (or
// step / ITERATIONS), 1 while frac < LR_HOLD_FRAC, then
// (1 - frac) / (1 - LR_HOLD_FRAC).
double lr_multiplier(const ScheduleConfig& cfg, std::int64_t step, double elapsed_ms, double step_ms);

// A note for the log when the schedule is not what its keys suggest: without
// a cap, a warm-down of WARMDOWN_ITERS >= ITERATIONS steps lowers the learning
// rate from the first step on (and starts below 1 when longer). "" otherwise.
std::string schedule_note(const ScheduleConfig& cfg);

// Whether `frac` of the run has passed: of the wall clock under a cap, else of ITERATIONS.
bool run_fraction_reached(const ScheduleConfig& cfg, double frac, std::int64_t step, double elapsed_ms);

}  // namespace pgolf
