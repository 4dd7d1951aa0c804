// The training clock that every rank agrees on (docs/MODEL.md ("The optimiser")).
// Step times reach the host one step late (the loop never waits for the
// GPU), so the schedule runs on the last agreed time plus the average step
// time for each step since. The first step carries the start-up costs
// (allocator growth, kernel selection) and is left out of that average.
#pragma once
#include <cstdint>

namespace pgolf {

class AgreedClock {
 public:
  AgreedClock() = default;
  // As a checkpoint recorded it.
  AgreedClock(std::int64_t agreed_step, double agreed_ms, double first_step_ms)
      : agreed_step_(agreed_step), agreed_ms_(agreed_ms), first_step_ms_(first_step_ms) {}

  // The agreed training time after the first step (the only one waited for).
  void agree_first_step(double ms);
  // The agreed training time after `step` steps, read from a step report.
  void agree(std::int64_t step, double ms);

  // Average step time without the first step: (agreed_ms - first_step_ms) /
  // (agreed_step - 1). 0 until a second step is agreed: no step time free of
  // start-up costs is known before, so no warm-down in time can start.
  double step_ms() const;
  // The training time after `steps_done` steps: the agreed time plus
  // step_ms() for each step since the agreed one.
  double elapsed(std::int64_t steps_done) const;

  std::int64_t agreed_step() const { return agreed_step_; }
  double agreed_ms() const { return agreed_ms_; }
  double first_step_ms() const { return first_step_ms_; }

 private:
  std::int64_t agreed_step_ = 0;
  double agreed_ms_ = 0, first_step_ms_ = 0;
};

}  // namespace pgolf
