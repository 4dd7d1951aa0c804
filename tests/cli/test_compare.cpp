// `pgolf compare` on run folders, as the real binary parses its command line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fake_runs.h"
#include "helpers.h"

using namespace pgolf;
using test::TempDir;

// Four runs of A against three of B, --margin after the `--` between the
// sets: A is 0.0102 nats better, significantly more than 0.005 (scipy's
// Welch test: t = 13.93, df = 2.54, p = 0.000909), but not more than 0.01.
// An unfinished run in either set is an error naming it; without `--` the
// command says how to separate the sets.
TEST(Compare, CommandPrintsTheVerdictOfTwoSetsOfRunFolders) {
  TempDir dir;
  std::string a, b;
  const std::vector<double> loss_a = {1.9000, 1.9004, 1.8998, 1.9002}, loss_b = {1.9102, 1.9110, 1.9098};
  for (std::size_t i = 0; i < loss_a.size(); ++i) {
    a += " " + dir.file("new_seed" + std::to_string(i));
    test::write_finished_run(dir.file("new_seed" + std::to_string(i)), static_cast<int>(i), loss_a[i], loss_a[i] / 1.69);
  }
  for (std::size_t i = 0; i < loss_b.size(); ++i) {
    b += " " + dir.file("old_seed" + std::to_string(i));
    test::write_finished_run(dir.file("old_seed" + std::to_string(i)), static_cast<int>(i), loss_b[i], loss_b[i] / 1.69);
  }
  auto r = test::run_pgolf("compare" + a + " --" + b + " --margin 0.005");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("set A: 4 runs\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("set B: 3 runs\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("compare: A improves on B by 0.0102 nats (margin 0.005): t=13.93 df=2.5 p=0.000909, significant "
                          "at p<0.01\n"),
            std::string::npos)
      << r.output;
  r = test::run_pgolf("compare --margin 0.01" + a + " --" + b);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(margin 0.01): t="), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not significant at p<0.01\n"), std::string::npos) << r.output;

  const std::string crashed = dir.file("crashed");
  make_dirs(crashed);
  test::write_text(crashed + "/metrics.jsonl", "{\"event\":\"train\",\"step\":5.0}\n");
  r = test::run_pgolf("compare" + a + " --" + b + " " + crashed);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("pgolf: error: '" + crashed + "': the run did not finish: metrics.jsonl has no final event"),
            std::string::npos)
      << r.output;

  r = test::run_pgolf("compare" + a + b);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("compare needs two sets of runs separated by --"), std::string::npos) << r.output;
  r = test::run_pgolf("compare --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Welch"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--margin"), std::string::npos) << r.output;
}
