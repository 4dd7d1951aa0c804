// StopSignals: the first SIGINT/SIGTERM is recorded, a second ends the
// process, and the previous handlers come back.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <utility>

#include "pgolf/core/signals.h"

using namespace pgolf;

namespace {

volatile sig_atomic_t g_seen = 0;
void note_signal(int sig) { g_seen = sig; }

}  // namespace

TEST(StopSignals, FirstSignalIsRecordedAndTheProcessLives) {
  for (int sig : {SIGINT, SIGTERM}) {
    const StopSignals signals;
    EXPECT_EQ(signals.pending(), 0);
    ASSERT_EQ(::raise(sig), 0);  // delivered to this thread before raise returns
    EXPECT_EQ(signals.pending(), sig);
  }
  EXPECT_STREQ(stop_signal_name(SIGINT), "SIGINT");
  EXPECT_STREQ(stop_signal_name(SIGTERM), "SIGTERM");
}

TEST(StopSignals, PreviousHandlerIsBackAfterwards) {
  struct sigaction mine {}, before {};
  mine.sa_handler = note_signal;
  sigemptyset(&mine.sa_mask);
  ASSERT_EQ(::sigaction(SIGTERM, &mine, &before), 0);
  {
    const StopSignals signals;
    ::raise(SIGTERM);
    EXPECT_EQ(g_seen, 0) << "the previous handler runs while StopSignals lives";
  }
  g_seen = 0;
  ::raise(SIGTERM);
  EXPECT_EQ(g_seen, SIGTERM);
  ::sigaction(SIGTERM, &before, nullptr);
}

// In a forked child: one signal, then another while it is pending. The
// child must end by the second signal, not reach its exit(0).
TEST(StopSignals, SecondSignalEndsTheProcessAtOnce) {
  for (const auto& [first, second] : {std::pair{SIGINT, SIGINT}, std::pair{SIGTERM, SIGTERM}, std::pair{SIGINT, SIGTERM}}) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      const StopSignals signals;
      ::raise(first);
      if (signals.pending() != first) ::_exit(2);
      ::raise(second);
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited with " << WEXITSTATUS(status) << " after signals " << first << ", "
                                     << second;
    EXPECT_EQ(WTERMSIG(status), second);
  }
}
