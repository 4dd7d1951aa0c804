// Fitting the export to a budget on a small model with Gaussian weights.
#include <gtest/gtest.h>

#include <regex>

#include "helpers.h"
#include "fit_model.h"
#include "pgolf/export/artifact.h"
#include "pgolf/export/fit.h"
#include "pgolf/core/io.h"

using namespace pgolf;
using test::TempDir;

using test::Fixture;
using test::fit_quietly;
using test::gaussian_model;
using test::pack;
using test::unfitted_bytes;

TEST(Fit, LandsUnderATightBudgetAndLogsTheMargin) {
  TempDir dir;
  Fixture f = gaussian_model();
  f.cfg.run.log_dir = dir.path();
  f.cfg.run.run_id = "run";
  const std::uint64_t before = unfitted_bytes(f);
  FitOptions o;
  o.code_bytes = 1000;
  o.margin = 500;
  o.budget = before * 7 / 10 + o.code_bytes + o.margin;  // 30% smaller than the configured export
  FitResult r;
  {
    RunLog log(f.cfg);
    r = fit_export(f.weights, {}, f.start, o, Codec::Zstd, kArtifactHeaderBytes, log);
  }
  const std::uint64_t artifact = r.packed.size() + kArtifactHeaderBytes;
  EXPECT_LE(artifact, o.target());
  EXPECT_TRUE(r.changed);
  EXPECT_GT(r.added_sse, 0.0);
  const std::string text = read_file(dir.file("run/train.log"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(text, m, std::regex("fit: fits: artifact (\\d+) bytes, margin (\\d+) bytes"))) << text;
  EXPECT_EQ(std::stoull(m[1]), artifact);
  EXPECT_EQ(std::stoull(m[2]), o.target() - artifact);
  EXPECT_NE(text.find("fit: artifact " + std::to_string(before) + " bytes"), std::string::npos) << text;
  // The result is a real, decodable payload of the chosen plans.
  const auto back = deserialize_tensors(r.payload, "memory");
  ASSERT_EQ(back.size(), f.weights.size());
  for (std::size_t i = 0; i < back.size(); ++i)
    EXPECT_EQ(back[i].plan, plan_tensor(f.weights[i].name, f.weights[i].tensor, r.choice.quant)) << back[i].name;
}

TEST(Fit, UnderBudgetOrDisabledKeepsTheConfiguredChoice) {
  Fixture f = gaussian_model();
  const std::uint64_t before = unfitted_bytes(f);
  FitOptions o;
  o.budget = before + 10;
  FitResult r = fit_quietly(f, o);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.packed.size() + kArtifactHeaderBytes, before);
  o.budget = before / 2;
  o.enabled = false;
  r = fit_quietly(f, o);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.packed.size() + kArtifactHeaderBytes, before);
}

TEST(Fit, SpareBytesAreSpentOnlyWhenAskedAndStayUnderTheBudget) {
  Fixture f = gaussian_model();
  const std::uint64_t before = unfitted_bytes(f);
  FitOptions o;
  o.budget = before * 13 / 10;
  o.spend_spare = true;
  FitResult r = fit_quietly(f, o);
  const std::uint64_t after = r.packed.size() + kArtifactHeaderBytes;
  EXPECT_TRUE(r.changed);
  EXPECT_GT(after, before);
  EXPECT_LE(after, o.target());
  EXPECT_LT(r.added_sse, 0.0);  // the weights are stored more accurately
}

TEST(Fit, ABudgetThatCannotBeMetFailsSayingByHowMuch) {
  Fixture f = gaussian_model();
  FitOptions o;
  o.budget = 3000;
  try {
    fit_quietly(f, o);
    FAIL() << "no error";
  } catch (const FitError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("over BUDGET_BYTES=3000"), std::string::npos) << msg;
    EXPECT_NE(msg.find("make the model smaller"), std::string::npos) << msg;
  }
}

TEST(Fit, PredictedBytesTrackRealCompression) {
  Fixture f = gaussian_model();
  auto q = quantize_tensors(f.weights, f.start.quant);
  double predicted = 0;
  for (const auto& t : q) predicted += predicted_bytes(t, Codec::Zstd);
  const double real = static_cast<double>(pack(serialize_tensors(q)).size());
  EXPECT_NEAR(predicted / real, 1.0, 0.25) << "predicted " << predicted << " real " << real;
}

