// `pgolf compare`'s reading of run folders and its report.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "fake_runs.h"
#include "helpers.h"
#include "pgolf/app/compare.h"

using namespace pgolf;
using test::TempDir;

namespace {

// The message of the exception that read_run_result(path) throws ("" if none).
std::string read_error(const std::string& path) {
  try {
    read_run_result(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

RunResult result(const std::string& name, double val_loss) {
  RunResult r;
  r.name = name;
  r.seed = "1";
  r.val_loss = val_loss;
  r.val_bpb = val_loss / 1.69;
  return r;
}

}  // namespace

// The final event's numbers (whole numbers written as 2.0) and the seed of
// config.env (with a comment after it), from the folder or from its
// metrics.jsonl; without config.env the seed is "?". A later final event
// wins, and a line cut short after it is skipped.
TEST(Compare, ReadsTheFinalEventOfAFolderOrItsMetricsFile) {
  TempDir dir;
  const std::string run = dir.file("run_seed42");
  test::write_finished_run(run, 42, 1.9012345678, 1.1234567);
  const RunResult r = read_run_result(run);
  EXPECT_EQ(r.name, run);
  EXPECT_EQ(r.seed, "42");
  EXPECT_DOUBLE_EQ(r.val_loss, 1.9012345678);
  EXPECT_DOUBLE_EQ(r.val_bpb, 1.1234567);
  EXPECT_DOUBLE_EQ(r.train_time_ms, 599512.5);
  EXPECT_EQ(r.steps, 7000);
  EXPECT_EQ(r.total_bytes, 15912345);
  EXPECT_EQ(r.artifact_bytes, 15800000);
  EXPECT_EQ(r.eval_ms, -1);  // a final event without eval_ms
  EXPECT_TRUE(r.compliance.empty());
  const RunResult from_file = read_run_result(run + "/metrics.jsonl");
  EXPECT_EQ(from_file.seed, "42");
  EXPECT_DOUBLE_EQ(from_file.val_loss, 1.9012345678);

  std::ofstream(run + "/metrics.jsonl", std::ios::app)
      << "{\"event\":\"provenance\",\"pgolf\":\"0.9.0\",\"world_size\":\"8\"}\n"
      << "{\"event\":\"compliance\",\"size\":\"pass\",\"eval_time\":\"fail\"}\n"
      << "{\"event\":\"final\",\"steps\":7001,\"train_time_ms\":1.0,\"eval_ms\":250.5,\"val_loss\":1.5,\"val_bpb\":0.9,"
         "\"artifact_bytes\":1,\"total_bytes\":2}\n"
      << "{\"event\":\"tra";
  const RunResult later = read_run_result(run);
  EXPECT_DOUBLE_EQ(later.val_loss, 1.5);
  EXPECT_EQ(later.steps, 7001);
  EXPECT_DOUBLE_EQ(later.eval_ms, 250.5);
  EXPECT_EQ(later.provenance.at("world_size"), "8");
  EXPECT_EQ(later.compliance, (std::vector<std::pair<std::string, std::string>>{{"size", "pass"}, {"eval_time", "fail"}}));

  test::write_text(run + "/config.env", "export SEED='7' # quoted\n");
  EXPECT_EQ(read_run_result(run).seed, "7");
  std::filesystem::remove(run + "/config.env");
  EXPECT_EQ(read_run_result(run).seed, "?");
}

// A run that did not finish is an error naming its folder and what is
// missing, with how it ended as far as metrics.jsonl tells; so are a missing
// folder or metrics.jsonl and a final event without a number.
TEST(Compare, AnUnfinishedRunIsAnErrorNamingIt) {
  TempDir dir;
  const std::string run = dir.file("crashed");
  make_dirs(run);
  test::write_text(run + "/metrics.jsonl", "{\"event\":\"train\",\"step\":120.0,\"train_loss\":3.1}\n");
  std::string e = read_error(run);
  EXPECT_NE(e.find("'" + run + "': the run did not finish: metrics.jsonl has no final event"), std::string::npos) << e;
  EXPECT_NE(e.find("its last event is 'train' at step 120"), std::string::npos) << e;

  test::write_text(run + "/metrics.jsonl", "{\"event\":\"error\",\"message\":\"parameter x holds non-finite values\"}\n");
  e = read_error(run);
  EXPECT_NE(e.find("no final event (it failed: parameter x holds non-finite values)"), std::string::npos) << e;

  test::write_text(run + "/metrics.jsonl", "{\"event\":\"stop\",\"signal\":15.0,\"step\":300.0}\n");
  EXPECT_NE(read_error(run).find("a signal stopped it at step 300"), std::string::npos) << read_error(run);

  test::write_text(run + "/metrics.jsonl", "");
  EXPECT_NE(read_error(run).find("no final event (metrics.jsonl holds no event yet"), std::string::npos) << read_error(run);

  test::write_text(run + "/metrics.jsonl", "{\"event\":\"final\",\"steps\":10,\"val_loss\":null,\"val_bpb\":1.0}\n");
  e = read_error(run);
  EXPECT_NE(e.find("'" + run + "': the final event of metrics.jsonl has no number \"val_loss\" (it is null"), std::string::npos) << e;

  // A quick experiment's score (EVAL_TOKENS_LIMIT) is no challenge score.
  test::write_text(run + "/metrics.jsonl",
                   "{\"event\":\"final\",\"steps\":10,\"train_time_ms\":5,\"val_loss\":2,\"val_bpb\":1,\"artifact_bytes\":8,"
                   "\"total_bytes\":9,\"subset_tokens\":5000}\n");
  EXPECT_NE(read_error(run).find("scored on the first 5000 validation tokens only (EVAL_TOKENS_LIMIT)"), std::string::npos)
      << read_error(run);

  std::filesystem::remove(run + "/metrics.jsonl");
  e = read_error(run);
  EXPECT_NE(e.find("'" + run + "' has no metrics.jsonl"), std::string::npos) << e;
  e = read_error(dir.file("nowhere"));
  EXPECT_NE(e.find("'" + dir.file("nowhere") + "' does not exist"), std::string::npos) << e;
}

// The tables, the means and the verdict of the Welch test (its numbers are
// checked against scipy in test_stats.cpp); one run in a set: no p-value.
TEST(Compare, ReportHasTablesMeansAndTheVerdict) {
  const std::vector<RunResult> a = {result("new_1", 1.9012), result("new_2", 1.9050), result("new_3", 1.8998),
                                    result("new_4", 1.9031)};
  const std::vector<RunResult> b = {result("old_1", 1.9105), result("old_2", 1.9121), result("old_3", 1.9079)};
  std::string out = format_comparison(a, b, 0.005);
  EXPECT_NE(out.find("set A: 4 runs\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  new_3        1   1.899800"), std::string::npos) << out;
  EXPECT_NE(out.find("  A: n=4 val_loss mean 1.902275 std 0.002265"), std::string::npos) << out;
  EXPECT_NE(out.find("  B: n=3 val_loss mean 1.910167 std 0.002120"), std::string::npos) << out;
  EXPECT_NE(out.find("B - A: val_loss +0.007892 nats"), std::string::npos) << out;
  EXPECT_NE(out.find("compare: A improves on B by 0.0079 nats (margin 0.005): t=1.73 df=4.6 p=0.074, not significant "
                     "at p<0.01\n"),
            std::string::npos)
      << out;

  out = format_comparison(b, a, 0.005);
  EXPECT_NE(out.find("compare: A does not improve on B (B - A = -0.0079 nats, margin 0.005): t="), std::string::npos) << out;

  out = format_comparison(a, {result("old_1", 1.9105)}, 0.005);
  EXPECT_NE(out.find("  B: n=1 val_loss mean 1.910500 std n/a"), std::string::npos) << out;
  EXPECT_NE(out.find("(margin 0.005): no p-value: set B has 1 value"), std::string::npos) << out;
}
