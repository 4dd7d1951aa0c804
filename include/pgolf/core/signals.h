// Ctrl-C (SIGINT) and SIGTERM as a request to stop a training run cleanly
// (docs/RELIABILITY.md ("Stopping a run")).
#pragma once
#include <signal.h>

#include <array>

namespace pgolf {

// While it lives, the first SIGINT or SIGTERM does not end the process: its
// number is recorded and pending() returns it, for the owner to stop at its
// next safe point. A second one while one is pending ends the process at
// once, as the default action does (a user pressing Ctrl-C twice). The
// previous handlers are back when it is destroyed. One lives at a time.
class StopSignals {
 public:
  // The signals it handles, in ascending order.
  static constexpr std::array<int, 2> kSignals{SIGINT, SIGTERM};

  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The number of the signal received, 0 if none.
  int pending() const;

 private:
  std::array<struct sigaction, kSignals.size()> previous_;
};

// "SIGINT" or "SIGTERM".
const char* stop_signal_name(int sig);

}  // namespace pgolf
