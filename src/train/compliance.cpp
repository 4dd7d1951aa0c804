#include "pgolf/train/compliance.h"

#include <cstdio>

namespace pgolf {
namespace {

std::string seconds(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000.0);
  return buf;
}

}  // namespace

std::vector<RuleCheck> check_rules(const RunFacts& f) {
  std::vector<RuleCheck> out;
  out.push_back({"size",
                 "artifact + code " + std::to_string(f.total_bytes) + " <= " + std::to_string(f.budget_bytes) + " bytes",
                 f.total_bytes <= f.budget_bytes});
  const double train = f.train_ms + f.calibration_ms;
  out.push_back({"train_time",
                 "training " + seconds(f.train_ms) + " + calibration on training data " + seconds(f.calibration_ms) + " = " +
                     seconds(train) + " <= 600 s",
                 train <= kChallengeTrainSeconds * 1000.0});
  out.push_back(check_eval_time(f.eval_ms, f.eval_budget_seconds, f.ttt));
  out.push_back({"eval_data", "the evaluation opened no training shard (enforced)", true});
  out.push_back({"ttt", f.ttt ? "test-time training scores each chunk before it adapts on it" : "no test-time training", true});
  out.push_back({"val_split",
                 f.subset_tokens > 0 ? "scored on the first " + std::to_string(f.subset_tokens) +
                                           " validation tokens only (EVAL_TOKENS_LIMIT): not a challenge score"
                                     : "the whole validation split scored",
                 f.subset_tokens == 0});
  return out;
}

RuleCheck check_eval_time(double eval_ms, double eval_budget_seconds, bool ttt) {
  const bool held = eval_budget_seconds > 0;
  return {"eval_time",
          "evaluation (sliding window" + std::string(ttt ? " and TTT" : "") + ") " + seconds(eval_ms) +
              (held ? " <= EVAL_BUDGET_SECONDS=" + seconds(eval_budget_seconds * 1000.0) : " (EVAL_BUDGET_SECONDS=0: no budget held)"),
          !held || eval_ms <= eval_budget_seconds * 1000.0};
}

std::vector<std::string> compliance_lines(const std::vector<RuleCheck>& checks) {
  std::vector<std::string> out;
  bool all = true;
  for (const RuleCheck& c : checks) {
    out.push_back("compliance: " + c.text + ": " + (c.pass ? "pass" : "FAIL"));
    all = all && c.pass;
  }
  out.push_back(std::string("compliance: ") + (all ? "PASS" : "FAIL") +
                " (times measured on this machine; the challenge's are taken on 8xH100: docs/RULES.md)");
  return out;
}

}  // namespace pgolf
