// `pgolf submit` on real runs: the records folder, submission.json against
// the runs' own final events, and the runs it refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.h"
#include "tiny_corpus.h"
#include "pgolf/config/config.h"
#include "pgolf/core/io.h"

using namespace pgolf;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

// The last event named `name` in a run folder's metrics.jsonl.
nlohmann::json last_event(const std::string& run, const std::string& name) {
  nlohmann::json found;
  std::istringstream lines(read_file(run + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("event", "") == name) found = j;
  }
  return found;
}

}  // namespace

TEST(Submit, TurnsSeedRunsIntoARecordsFolderAndRefusesMismatchedRuns) {
  TempDir dir;
  test::write_text(dir.file("tiny.env"), format_config(test::tiny_run(dir, 4)));
  auto train = [&](const std::string& run_id, const std::string& sets) {
    auto r = test::run_pgolf("train --config " + dir.file("tiny.env") + " --set RUN_ID=" + run_id + sets);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  };
  train("s1", " --set SEED=1");
  train("s2", " --set SEED=2");
  train("s3_other", " --set SEED=3 --set WARMDOWN_ITERS=3");
  train("s4_slow_eval", " --set SEED=4 --set EVAL_BUDGET_SECONDS=0.000001");
  const std::string common = " --name Tiny --author 'Ada L.' --github-id ada --date 2026-12-07";

  const std::string out = dir.file("records/2026-12-07_Tiny");
  auto r = test::run_pgolf("submit " + dir.file("s2") + " " + dir.file("s1") + " --output " + out + common);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"README.md", "submission.json", "train_gpt.py", "train_seed1.log", "train_seed2.log"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  EXPECT_EQ(read_file(out + "/train_gpt.py"), read_file(dir.file("s1/train_gpt.py")));
  EXPECT_EQ(read_file(out + "/train_seed2.log"), read_file(dir.file("s2/train.log")));

  const auto j = nlohmann::json::parse(read_file(out + "/submission.json"));
  const auto f1 = last_event(dir.file("s1"), "final"), f2 = last_event(dir.file("s2"), "final");
  const double b1 = f1["val_bpb"], b2 = f2["val_bpb"];
  EXPECT_EQ(j["author"], "Ada L.");
  EXPECT_EQ(j["github_id"], "ada");
  EXPECT_EQ(j["name"], "Tiny");
  EXPECT_EQ(j["date"], "2026-12-07");
  EXPECT_EQ(j["track"], "track_10min_16mb");
  EXPECT_EQ(j["seeds"], nlohmann::json::array({1, 2}));
  EXPECT_DOUBLE_EQ(j["val_bpb"].get<double>(), (b1 + b2) / 2);
  EXPECT_NEAR(j["val_bpb_std"].get<double>(), std::fabs(b1 - b2) / std::sqrt(2.0), 1e-15);  // n - 1 = 1
  const auto code = fs::file_size(dir.file("s1/train_gpt.py"));
  EXPECT_EQ(j["bytes_code"], code);
  const auto& s1 = j["seed_results"]["1"];
  EXPECT_EQ(s1["val_bpb"], f1["val_bpb"]);
  EXPECT_EQ(s1["val_loss"], f1["val_loss"]);
  EXPECT_EQ(s1["artifact_bytes"], f1["artifact_bytes"]);
  EXPECT_EQ(s1["total_bytes"], f1["total_bytes"]);
  EXPECT_EQ(s1["code_bytes"], code);
  EXPECT_EQ(s1["artifact_bytes"].get<std::uint64_t>() + code, s1["total_bytes"].get<std::uint64_t>());
  EXPECT_NEAR(s1["eval_time_s"].get<double>(), f1["eval_ms"].get<double>() / 1000, 0.001);
  EXPECT_NEAR(s1["train_time_s"].get<double>(), f1["train_time_ms"].get<double>() / 1000, 0.001);
  EXPECT_EQ(j["hardware"].get<std::string>().rfind("1x", 0), 0u) << j["hardware"];
  EXPECT_FALSE(j["techniques"].empty());
  const std::string readme = read_file(out + "/README.md");
  EXPECT_NE(readme.find("# Tiny\n"), std::string::npos);
  EXPECT_NE(readme.find("| 1 | " + std::string(f1["val_loss"].dump()).substr(0, 6)), std::string::npos) << readme;
  EXPECT_NE(readme.find("## Compliance"), std::string::npos);
  EXPECT_NE(readme.find("torchrun --standalone --nproc_per_node=8 train_gpt.py"), std::string::npos);

  auto refused = [&](const std::string& runs, const std::string& output, const std::string& why) {
    auto r = test::run_pgolf("submit " + runs + " --output " + output + common);
    EXPECT_EQ(r.exit_code, 1) << runs;
    EXPECT_NE(r.output.find(why), std::string::npos) << r.output;
  };
  refused(dir.file("s1") + " " + dir.file("s2"), out, "exists and is not an empty folder");
  const std::string none = dir.file("records/none");
  refused(dir.file("s1") + " " + dir.file("s1"), none, "two runs have SEED=1");
  refused(dir.file("s1") + " " + dir.file("s3_other"), none, "WARMDOWN_ITERS=3");
  refused(dir.file("s1") + " " + dir.file("s4_slow_eval"), none, "fails the rule 'eval_time'");
  r = test::run_pgolf("submit " + dir.file("s1") + " --output " + none + " --name T --author A --github-id a --date 7.12.2026");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--date '7.12.2026' is not YYYY-MM-DD"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(none));
  std::vector<std::string> left;  // no temporary folder stays behind
  for (const auto& e : fs::directory_iterator(dir.file("records"))) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"2026-12-07_Tiny"});
}
