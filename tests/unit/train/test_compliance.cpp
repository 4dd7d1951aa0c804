// The rules checked at the end of a run, against hand-made facts; the
// training data closed while a ban holds.
#include "pgolf/train/compliance.h"

#include <gtest/gtest.h>

#include "pgolf/data/data.h"

using namespace pgolf;

namespace {

RunFacts passing() {
  RunFacts f;
  f.total_bytes = 15'900'000;
  f.budget_bytes = 16'000'000;
  f.train_ms = 590'000;
  f.calibration_ms = 9'500;
  f.eval_ms = 200'000;
  f.eval_budget_seconds = 600;
  return f;
}

bool passes(const std::vector<RuleCheck>& checks, const std::string& rule) {
  for (const RuleCheck& c : checks)
    if (c.rule == rule) return c.pass;
  ADD_FAILURE() << "no check " << rule;
  return false;
}

}  // namespace

TEST(Compliance, EachRuleFailsOnItsOwnFact) {
  const auto ok = check_rules(passing());
  for (const char* rule : {"size", "train_time", "eval_time", "eval_data", "ttt", "val_split"}) EXPECT_TRUE(passes(ok, rule)) << rule;
  EXPECT_EQ(compliance_lines(ok).back().rfind("compliance: PASS", 0), 0u);

  RunFacts f = passing();
  f.total_bytes = 16'000'001;
  EXPECT_FALSE(passes(check_rules(f), "size"));
  f = passing();
  f.calibration_ms = 10'001;  // 590 s of training + 10.001 s of calibration on training data > 600 s
  const auto late = check_rules(f);
  EXPECT_FALSE(passes(late, "train_time"));
  EXPECT_EQ(compliance_lines(late)[1], "compliance: training 590.0 s + calibration on training data 10.0 s = 600.0 s <= 600 s: FAIL");
  EXPECT_EQ(compliance_lines(late).back().rfind("compliance: FAIL", 0), 0u);
  f = passing();
  f.eval_ms = 600'001;
  EXPECT_FALSE(passes(check_rules(f), "eval_time"));
  f.eval_budget_seconds = 0;  // no budget held
  EXPECT_TRUE(passes(check_rules(f), "eval_time"));
  f = passing();
  f.subset_tokens = 5000;
  EXPECT_FALSE(passes(check_rules(f), "val_split"));
}

TEST(Compliance, TrainingShardsAreClosedWhileABanHolds) {
  EXPECT_EQ(train_pattern("d"), "d/fineweb_train_[0-9]*.bin");
  {
    const TrainingDataBan ban("the final evaluation");
    try {
      train_pattern("d");
      ADD_FAILURE() << "no error";
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find("the final evaluation asked for the training shards under 'd'"), std::string::npos);
    }
  }
  EXPECT_EQ(train_pattern("d"), "d/fineweb_train_[0-9]*.bin");  // open again after the evaluation
}
