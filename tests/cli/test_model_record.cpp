// A run's artifact and weights record their model and scoring keys: `pgolf
// eval` scores them with no configuration to the run's own numbers, and a
// configuration that contradicts them is refused (as the real binary).
#include <gtest/gtest.h>

#include "helpers.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

namespace {

// The line of `output` that starts with `label` (up to its end), or "".
std::string line_of(const std::string& output, const std::string& label) {
  const auto at = output.find(label);
  if (at == std::string::npos) return "";
  return output.substr(at, output.find('\n', at) - at);
}

}  // namespace

TEST(ModelRecord, EvalNeedsNoConfigAndRefusesAContradiction) {
  TempDir dir;
  Config c = test::tiny_run(dir, 4);
  c.model.logit_softcap = 25;  // keys that keep every shape: without the record, defaults would score another model
  c.model.mlp_activation = MlpActivation::LeakyRelu2;
  c.model.rope_base = 5000;
  test::write_text(dir.file("tiny.env"), format_config(c));
  const auto train = test::run_pgolf("train --config " + dir.file("tiny.env"));
  ASSERT_EQ(train.exit_code, 0) << train.output;
  const std::string exact = line_of(train.output, "final_sliding_window_exact ");
  ASSERT_FALSE(exact.empty()) << train.output;

  // Only where the data is: the rest comes from the artifact.
  const std::string data = " --set DATA_PATH=" + c.run.data_path + " --set TOKENIZER_PATH=" + c.run.tokenizer_path;
  const std::string artifact = dir.file("run/final_model.pgolf");
  auto r = test::run_pgolf("eval " + artifact + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(line_of(r.output, "final_sliding_window_exact "), exact) << r.output;

  r = test::run_pgolf("eval " + artifact + data + " --set LOGIT_SOFTCAP=35");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("the configuration contradicts what the model file records: LOGIT_SOFTCAP ('" + artifact +
                          "' records '25'; --set LOGIT_SOFTCAP=35 gives '35')"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("OVERRIDE_RECORDED=1"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("val_bpb"), std::string::npos) << r.output;

  r = test::run_pgolf("eval " + artifact + data + " --set LOGIT_SOFTCAP=35 --set OVERRIDE_RECORDED=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("eval: OVERRIDE_RECORDED=1: the configuration overrides the model file's record in LOGIT_SOFTCAP"),
            std::string::npos)
      << r.output;
  const std::string overridden = line_of(r.output, "final_sliding_window_exact ");
  EXPECT_FALSE(overridden.empty());
  EXPECT_NE(overridden, exact);

  // The weights file records the same: scored and exported without a config.
  const std::string weights = dir.file("run/model.safetensors");
  r = test::run_pgolf("eval " + weights + data + " --set LOGIT_SOFTCAP=35");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("LOGIT_SOFTCAP ('" + weights + "' records '25'"), std::string::npos) << r.output;
  r = test::run_pgolf("export --weights " + weights + " --output " + dir.file("again.pgolf") + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_pgolf("inspect " + dir.file("again.pgolf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("version:3 model record ("), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" LOGIT_SOFTCAP=25 "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" MLP_ACTIVATION=leaky_relu2 "), std::string::npos) << r.output;
}
