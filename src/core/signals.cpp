#include "pgolf/core/signals.h"

#include <atomic>
#include <stdexcept>
#include <string>

namespace pgolf {

namespace {

// The handler may only touch lock-free atomics (async-signal-safe): 0 while
// no signal is pending, else the first signal's number.
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<int> g_pending{0};
std::atomic<bool> g_alive{false};

// The first signal is recorded (0 -> sig). A second one finds a signal
// pending: the default action comes back and the signal is raised again; it
// is blocked while this handler runs, so it ends the process as soon as the
// handler returns.
void on_signal(int sig) {
  int none = 0;
  if (g_pending.compare_exchange_strong(none, sig)) return;
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  raise(sig);
}

}  // namespace

StopSignals::StopSignals() {
  if (g_alive.exchange(true)) throw std::logic_error("StopSignals: another one is alive in this process");
  g_pending = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // Interrupted system calls (reads, the ranks' socket waits) resume rather
  // than fail with EINTR: the run goes on to its next step.
  sa.sa_flags = SA_RESTART;
  for (std::size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &sa, &previous_[i]);
}

StopSignals::~StopSignals() {
  for (std::size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  g_alive = false;
}

int StopSignals::pending() const { return g_pending.load(); }

const char* stop_signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
  }
  throw std::invalid_argument("not a stop signal: " + std::to_string(sig));
}

}  // namespace pgolf
