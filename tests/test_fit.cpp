// Fitting the export to a budget on a small model with Gaussian weights.
#include <gtest/gtest.h>

#include <regex>

#include "helpers.h"
#include "pgolf/export/artifact.h"
#include "pgolf/export/fit.h"
#include "pgolf/core/io.h"

using namespace pgolf;
using test::TempDir;

namespace {

struct Fixture {
  Config cfg;
  std::vector<NamedTensor> weights;
  ExportChoice start;
};

Fixture gaussian_model() {
  Fixture f;
  f.cfg = test::small_model(2, 128);
  f.cfg.vocab_size = 256;
  f.cfg.quant_passthrough_numel = 4096;
  GPT m(f.cfg, {});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (const auto& p : m.parameters())
    f.weights.push_back({p.name, p.tensor.dim() == 2 ? at::normal(0.0, 0.1, p.tensor.sizes(), gen, at::kFloat)
                                                     : p.tensor.detach().clone()});
  f.start = {quant_options(f.cfg), 0.0};
  return f;
}

std::string pack(const std::string& payload) { return compress(payload, Codec::Zstd); }

std::uint64_t unfitted_bytes(const Fixture& f) {
  return pack(serialize_tensors(quantize_tensors(f.weights, f.start.quant))).size() + kArtifactHeaderBytes;
}

// fit_export with a log that prints nothing.
FitResult fit_quietly(const Fixture& f, const FitOptions& o) {
  TempDir dir;
  Config cfg = f.cfg;
  cfg.log_dir = dir.path();
  RunLog log(cfg, RunLog::Mode::Silent);
  return fit_export(f.weights, {}, f.start, o, Codec::Zstd, kArtifactHeaderBytes, log);
}

}  // namespace

TEST(Fit, LandsUnderATightBudgetAndLogsTheMargin) {
  TempDir dir;
  Fixture f = gaussian_model();
  f.cfg.log_dir = dir.path();
  f.cfg.run_id = "run";
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

// `pgolf export` fits a tiny budget from the command line.
TEST(Fit, ExportCommandFitsTheBudget) {
  TempDir dir;
  Fixture f = gaussian_model();
  test::write_text(dir.file("c.env"), format_config(f.cfg));
  auto plain = test::run_pgolf("export --config " + dir.file("c.env") + " --random-std 0.1 --output " + dir.file("a.pgolf"));
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(plain.output, m, std::regex("Total submission size int6\\+zstd: (\\d+) bytes")));
  const std::uint64_t total = std::stoull(m[1]);
  const std::uint64_t budget = total - 20000;
  auto fitted = test::run_pgolf("export --config " + dir.file("c.env") + " --random-std 0.1 --set BUDGET_BYTES=" +
                                std::to_string(budget) + " --output " + dir.file("b.pgolf"));
  ASSERT_EQ(fitted.exit_code, 0) << fitted.output;
  ASSERT_TRUE(std::regex_search(fitted.output, m, std::regex("Total submission size int6\\+zstd: (\\d+) bytes")));
  EXPECT_LE(std::stoull(m[1]), budget) << fitted.output;
  EXPECT_NE(fitted.output.find("fit: chosen"), std::string::npos) << fitted.output;
  auto impossible = test::run_pgolf("export --config " + dir.file("c.env") + " --set BUDGET_BYTES=1000 --output " +
                                    dir.file("c.pgolf"));
  EXPECT_NE(impossible.exit_code, 0);
  EXPECT_NE(impossible.output.find("make the model smaller"), std::string::npos) << impossible.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.pgolf")));
}
