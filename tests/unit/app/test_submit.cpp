// submission.json's technique summary of a configuration (app/submit.h).
#include <gtest/gtest.h>

#include <algorithm>

#include "pgolf/app/submit.h"

using namespace pgolf;

namespace {
bool names(const std::vector<std::string>& t, const std::string& fragment) {
  return std::any_of(t.begin(), t.end(), [&](const std::string& s) { return s.find(fragment) != std::string::npos; });
}
}  // namespace

// GPTQ is named whenever any plan rounds with it (uses_gptq), not only the MLP's or attention's.
TEST(Submit, TechniquesNameWhatTheConfigurationUses) {
  Config c;
  EXPECT_TRUE(names(techniques(c), "12 layers, width 512, 8 query / 4 KV heads"));
  EXPECT_FALSE(names(techniques(c), "GPTQ"));
  EXPECT_FALSE(names(techniques(c), "test-time training"));
  c.export_.quant_bigram_proj = parse_tensor_plan("int6,gptq");
  EXPECT_TRUE(names(techniques(c), "GPTQ on 262144 training tokens"));
  c.ttt.ttt_enabled = true;
  EXPECT_TRUE(names(techniques(c), "score-first test-time training (LoRA rank 80)"));
}
