#include "pgolf/train/clock.h"

namespace pgolf {

void AgreedClock::agree_first_step(double ms) {
  first_step_ms_ = ms;
  agree(1, ms);
}

void AgreedClock::agree(std::int64_t step, double ms) {
  agreed_step_ = step;
  agreed_ms_ = ms;
}

double AgreedClock::step_ms() const {
  if (agreed_step_ < 2) return 0.0;
  return (agreed_ms_ - first_step_ms_) / static_cast<double>(agreed_step_ - 1);
}

double AgreedClock::elapsed(std::int64_t steps_done) const {
  return agreed_ms_ + static_cast<double>(steps_done - agreed_step_) * step_ms();
}

}  // namespace pgolf
