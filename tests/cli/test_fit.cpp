// `pgolf export` fitting a model to the budget, as the real binary.
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
using test::gaussian_model;

// `pgolf export` fits a tiny budget from the command line.
TEST(Fit, ExportCommandFitsTheBudget) {
  TempDir dir;
  Fixture f = gaussian_model();
  test::write_text(dir.file("c.env"), format_config(f.cfg));
  auto plain = test::run_pgolf("export --config " + dir.file("c.env") + " --random-std 0.1 --output " + dir.file("a.pgolf"));
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(plain.output, m, std::regex("Total submission size \\S+: (\\d+) bytes")));
  const std::uint64_t total = std::stoull(m[1]);
  const std::uint64_t budget = total - 20000;
  auto fitted = test::run_pgolf("export --config " + dir.file("c.env") + " --random-std 0.1 --set BUDGET_BYTES=" +
                                std::to_string(budget) + " --output " + dir.file("b.pgolf"));
  ASSERT_EQ(fitted.exit_code, 0) << fitted.output;
  ASSERT_TRUE(std::regex_search(fitted.output, m, std::regex("Total submission size \\S+: (\\d+) bytes")));
  EXPECT_LE(std::stoull(m[1]), budget) << fitted.output;
  EXPECT_NE(fitted.output.find("fit: chosen"), std::string::npos) << fitted.output;
  auto impossible = test::run_pgolf("export --config " + dir.file("c.env") + " --set BUDGET_BYTES=1000 --output " +
                                    dir.file("c.pgolf"));
  EXPECT_NE(impossible.exit_code, 0);
  EXPECT_NE(impossible.output.find("make the model smaller"), std::string::npos) << impossible.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.pgolf")));
}
