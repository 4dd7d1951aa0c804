// `pgolf bench --repeats`: the spread of repeated runs, computed by hand.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "pgolf/app/bench.h"

using namespace pgolf;

namespace {

BenchResult run(double step_ms, std::int64_t tokens_per_step = 1000) {
  BenchResult r;
  r.step_ms = step_ms;
  r.tokens_per_step = tokens_per_step;
  return r;
}

}  // namespace

// Step times 10, 12, 11 ms: mean 11, smallest 10, largest 12.
TEST(Bench, RepeatedRunsGiveTheMeanAndRangeOfTheStepTime) {
  EXPECT_EQ(format_bench_repeats(std::vector<BenchResult>{run(10), run(12), run(11)}),
            "step_ms over 3 runs: mean:11.00 min:10.00 max:12.00\n");
}

// Pairs (10 -> 8), (10 -> 9), (12 -> 9): step-time ratios 0.8, 0.9, 0.75
// (mean 0.8167); tokens per second 1.25, 1.1111, 1.3333 (mean 1.2315). The
// second pair's second run has twice the tokens per step: ratio 2.2222.
TEST(Bench, RepeatedPairsGiveTheMeanAndRangeOfTheirRatios) {
  const std::vector<std::pair<BenchResult, BenchResult>> pairs = {
      {run(10), run(8)}, {run(10), run(9)}, {run(12), run(9)}};
  EXPECT_EQ(format_bench_repeats(pairs),
            "ratio (second / first) over 3 pairs: step_ms mean:x0.817 min:x0.750 max:x0.900 "
            "tokens_per_s mean:x1.231 min:x1.111 max:x1.333\n");
  const std::vector<std::pair<BenchResult, BenchResult>> wider = {{run(10), run(9, 2000)}};
  EXPECT_NE(format_bench_repeats(wider).find("tokens_per_s mean:x2.222 min:x2.222 max:x2.222"), std::string::npos);
}
