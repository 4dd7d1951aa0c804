// The challenge's rules, checked at the end of every run (docs/RULES.md):
// artifact + code within the budget; training and every pass over training
// data (GPTQ's calibration) within 600 s; the evaluation within its budget
// and without training data; test-time training scores before it adapts;
// the whole validation split scored. Times are this machine's: the
// challenge's are taken on 8xH100.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pgolf {

constexpr double kChallengeTrainSeconds = 600.0;

struct RunFacts {
  std::uint64_t total_bytes = 0, budget_bytes = 0;
  double train_ms = 0, calibration_ms = 0;
  double eval_ms = 0, eval_budget_seconds = 0;
  bool ttt = false;
  std::int64_t subset_tokens = 0;  // EVAL_TOKENS_LIMIT's cut; 0 = the whole split
};

struct RuleCheck {
  std::string rule;  // "size", "train_time", "eval_time", "eval_data", "ttt", "val_split"
  std::string text;  // what was measured against what
  bool pass = true;
};

std::vector<RuleCheck> check_rules(const RunFacts& facts);

// The evaluation's rule alone (`pgolf eval` checks it too): `eval_ms` of the
// scoring the challenge times (sliding window, TTT) against
// EVAL_BUDGET_SECONDS (0: no budget held).
RuleCheck check_eval_time(double eval_ms, double eval_budget_seconds, bool ttt);

// "compliance: <text>: pass|FAIL" per check and the verdict line.
std::vector<std::string> compliance_lines(const std::vector<RuleCheck>& checks);

}  // namespace pgolf
