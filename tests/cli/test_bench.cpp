// `pgolf bench --repeats N --against KEY=VALUE` runs the pair alternately N
// times, prints each pair's ratio and then their spread.
#include <gtest/gtest.h>

#include <string>

#include "helpers.h"

using namespace pgolf;

namespace {

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(BenchCommand, RepeatsAlternateThePairAndGiveTheSpreadOfItsRatios) {
  const auto r = test::run_pgolf(std::string("bench --config ") + PGOLF_SOURCE_DIR +
                                 "/configs/cpu_demo.env --set NUM_LAYERS=2 --steps 1 --warmup 0 --repeats 2 "
                                 "--against FUSED_KERNELS=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto first = r.output.find("bench (repeat 1/2): NUM_LAYERS=2");
  const auto second = r.output.find("bench with FUSED_KERNELS=1 (repeat 1/2)");
  const auto third = r.output.find("bench (repeat 2/2)");
  const auto fourth = r.output.find("bench with FUSED_KERNELS=1 (repeat 2/2)");
  ASSERT_NE(fourth, std::string::npos) << r.output;
  EXPECT_TRUE(first < second && second < third && third < fourth) << r.output;
  EXPECT_EQ(count(r.output, "\nratio (second / first): "), 2) << r.output;
  EXPECT_NE(r.output.find("\nratio (second / first) over 2 pairs: step_ms mean:x"), std::string::npos) << r.output;
  EXPECT_EQ(count(r.output, "fused_kernels: FUSED_KERNELS=1 is ignored on cpu"), 2) << r.output;
}
