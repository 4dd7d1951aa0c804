// Multi-process runs on CPU over Gloo as real processes: two ranks (env vars,
// mpirun, launch.sh) against one process, a dead or hung peer, the scripts.
#include <gtest/gtest.h>

#include <iostream>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "helpers.h"
#include "shard_reader.h"
#include "pgolf/data/data.h"
#include "pgolf/dist/dist.h"
#include "pgolf/core/io.h"
#include "pgolf/optim/optim.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

namespace {

double max_abs_diff(const std::string& a, const std::string& b) {
  auto x = load_safetensors(a), y = load_safetensors(b);
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    worst = std::max(worst, (x[i].tensor.to(at::kDouble) - y[i].tensor.to(at::kDouble)).abs().max().item<double>());
  return worst;
}

}  // namespace

// Two ranks, each with grad_accum 4, against one process with grad_accum 8:
// the same global batch. Gradients are summed in another order, so weights
// agree to float tolerance (observed on the demo config after 6 steps: max
// |diff| 4.6e-7), while the two ranks agree bit for bit (checked by the run).
TEST(Dist, TwoRanksByEnvVarsMatchOneProcess) {
  TempDir dir;
  Config c = test::tiny_run(dir, 8);
  c.runtime.num_threads = 1;
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto one = test::run_pgolf("train --config " + dir.file("tiny.env") + " --set RUN_ID=one");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const std::string env = "WORLD_SIZE=2 MASTER_PORT=" + std::to_string(test::test_port()) + " ";
  const std::string cmd = std::string(PGOLF_BINARY) + " train --config " + dir.file("tiny.env") + " --set RUN_ID=two";
  auto two = test::run_shell("(RANK=1 " + env + cmd + " > " + dir.file("rank1.log") + " 2>&1 &) ; RANK=0 " + env + cmd +
                             "; rc=$?; sleep 1; exit $rc");
  ASSERT_EQ(two.exit_code, 0) << two.output << read_file(dir.file("rank1.log"));
  EXPECT_NE(two.output.find("launcher:torchrun world_size:2"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("world_size:2 grad_accum_steps:4"), std::string::npos);
  EXPECT_NE(two.output.find("ranks_in_sync: bit-identical weights on all 2 ranks"), std::string::npos) << two.output;
  EXPECT_LT(max_abs_diff(dir.file("one/model.safetensors"), dir.file("two/model.safetensors")), 1e-5);
}

// Under a wall-clock cap the learning rate follows the clock and the stop is
// decided by time. Each rank's own clock differs from the others', so both
// must come from the time the ranks agree on: with the warm-down covering the
// whole run, the LR changes every step, and any disagreement leaves the ranks
// with different weights (caught by the run's sync check) or at different
// steps (a collective with no partner: a timeout).
TEST(Dist, TwoRanksUnderAWallClockCapAgreeOnScheduleAndStop) {
  TempDir dir;
  Config c = test::tiny_run(dir, 100000);
  c.runtime.num_threads = 1;
  c.schedule.max_wallclock_seconds = 3;
  c.schedule.warmdown_iters = 100000;
  c.train.val_loss_every = 0;
  c.runtime.dist_timeout_seconds = 30;
  test::write_text(dir.file("tiny.env"), format_config(c));
  const std::string env = "WORLD_SIZE=2 MASTER_PORT=" + std::to_string(test::test_port(3)) + " ";
  const std::string cmd = std::string(PGOLF_BINARY) + " train --config " + dir.file("tiny.env");
  auto two = test::run_shell("(RANK=1 " + env + cmd + " > " + dir.file("rank1.log") + " 2>&1 &) ; RANK=0 " + env + cmd +
                             "; rc=$?; sleep 1; exit $rc");
  ASSERT_EQ(two.exit_code, 0) << two.output << read_file(dir.file("rank1.log"));
  EXPECT_NE(two.output.find("stopping_early: wallclock_cap"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find("ranks_in_sync: bit-identical weights on all 2 ranks"), std::string::npos) << two.output;
}

// Through scripts/launch.sh (mpirun, then torchrun), run from another folder
// with a relative --config path; the script passes pgolf's variables on.
TEST(Dist, TwoRanksThroughLaunchScriptFromAnotherFolder) {
  TempDir dir;
  Config c = test::tiny_run(dir, 4);
  test::write_text(dir.file("tiny.env"), format_config(c));
  const std::string torchrun_dir = std::string(PGOLF_SOURCE_DIR) + "/.venv/bin";
  struct Way {
    std::string launcher, path, logged;
  };
  for (const Way& way : {Way{"mpirun", "", "launcher:openmpi"}, Way{"torchrun", torchrun_dir + ":", "launcher:torchrun"}}) {
    // mpirun refuses to run as root without its flag, even for --help: found is enough.
    const std::string probe = way.launcher == "mpirun" ? "command -v mpirun" : "PATH=" + way.path + "$PATH torchrun --help";
    if (test::run_shell(probe).exit_code != 0) {
      std::cout << way.launcher << " does not run here: that way is not tested\n";
      continue;
    }
    auto r = test::run_shell("cd " + dir.path() + " && PATH=" + way.path + "$PATH LAUNCHER=" + way.launcher +
                             " NUM_THREADS=1 MASTER_PORT=" + std::to_string(test::test_port()) + " PGOLF=" + PGOLF_BINARY +
                             " bash " + PGOLF_SOURCE_DIR + "/scripts/launch.sh 2 train --config tiny.env --set RUN_ID=" +
                             way.launcher);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(way.logged + " world_size:2 device:cpu threads:1"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("ranks_in_sync: bit-identical weights on all 2 ranks"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("final_sliding_window_exact"), std::string::npos);
    EXPECT_EQ(r.output.find("failed to bind"), std::string::npos) << r.output;  // no alarming store line under torchrun
    EXPECT_EQ(r.output.find("OMP_NUM_THREADS"), std::string::npos) << r.output;
  }
}

TEST(Scripts, SweepSeedsTabulatesEverySeed) {
  TempDir dir;
  Config c = test::tiny_run(dir, 3);
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto r = test::run_shell("cd " + dir.path() + " && PGOLF=" + PGOLF_BINARY + " bash " + PGOLF_SOURCE_DIR +
                           "/scripts/sweep_seeds.sh --name s -- --config tiny.env");  // from another folder
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string table = read_file(dir.file("s_sweep.md"));
  for (const char* row : {"| 1337 | ", "| 42 | ", "| 2024 | ", "| mean | ", "| std | "})
    EXPECT_NE(table.find(row), std::string::npos) << row << "\n" << table;
  EXPECT_NE(r.output.find(table), std::string::npos);  // printed too
  for (const char* run : {"s_seed1337", "s_seed42", "s_seed2024"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string(run) + "/final_model.pgolf"))) << run;
  ASSERT_TRUE(std::filesystem::exists(dir.file("s_sweep.png"))) << r.output;  // and the plot of the runs
  EXPECT_GT(std::filesystem::file_size(dir.file("s_sweep.png")), 10000u);
  EXPECT_NE(r.output.find("plot: " + dir.file("s_sweep.png")), std::string::npos) << r.output;
}

// Two hand-written runs, one without val events and one still running (no
// final event, a half-written last line), drawn into one PNG; a folder
// without metrics.jsonl fails with its name.
TEST(Scripts, PlotRunsDrawsEveryRun) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("noval"));
  std::filesystem::create_directories(dir.file("running"));
  std::filesystem::create_directories(dir.file("empty_run"));
  test::write_text(dir.file("noval/metrics.jsonl"),
                   "{\"event\":\"train\",\"step\":1.0,\"train_loss\":6.9,\"lr_mult\":1.0,\"train_time_ms\":900.0}\n"
                   "{\"event\":\"train\",\"step\":2.0,\"train_loss\":6.5,\"lr_mult\":1.0,\"train_time_ms\":1400.0}\n"
                   "{\"event\":\"train\",\"step\":10.0,\"train_loss\":5.7,\"lr_mult\":0.5,\"train_time_ms\":5400.0}\n"
                   "{\"event\":\"final\",\"steps\":10.0,\"train_time_ms\":5400.0,\"val_loss\":5.6,\"val_bpb\":3.41}\n");
  test::write_text(dir.file("running/metrics.jsonl"),
                   "{\"event\":\"val\",\"step\":0.0,\"val_loss\":6.93,\"val_bpb\":4.2,\"train_time_ms\":0.0}\n"
                   "{\"event\":\"train\",\"step\":1.0,\"train_loss\":6.95,\"lr_mult\":1.0,\"train_time_ms\":1000.0}\n"
                   "{\"event\":\"train\",\"step\":2.0,\"train_loss\":6.4,\"lr_mult\":1.0,\"train_time_ms\":1600.0}\n"
                   "{\"event\":\"val\",\"step\":5.0,\"val_loss\":5.9,\"val_bpb\":3.6,\"train_time_ms\":3000.0}\n"
                   "{\"event\":\"train\",\"step\":6.0,\"train_lo");
  const std::string script = "cd " + std::string(PGOLF_SOURCE_DIR) + " && bash scripts/plot_runs.sh ";
  auto r = test::run_shell(script + dir.file("noval") + " " + dir.file("running") + " --output " + dir.file("p.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("plot: " + dir.file("p.png")), std::string::npos) << r.output;
  std::string png = read_file(dir.file("p.png"));
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(png.size(), 10000u);
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))  // no temporary file left
    EXPECT_EQ(entry.path().filename().string().find(".plot_runs"), std::string::npos) << entry.path();

  r = test::run_shell(script + dir.file("noval") + " " + dir.file("empty_run") + " --output " + dir.file("q.png"));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(dir.file("empty_run") + ": no metrics.jsonl"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("q.png")));
}

// A run resumed from its step-2 checkpoint after logging steps 3 and 4: the
// curve holds each step once, the resumed run's values past step 2.
TEST(Scripts, PlotRunsDrawsAResumedRunsRedoneStepsOnce) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("resumed"));
  test::write_text(dir.file("resumed/metrics.jsonl"),
                   "{\"event\":\"train\",\"step\":1.0,\"train_loss\":6.9,\"lr_mult\":1.0,\"train_time_ms\":900.0}\n"
                   "{\"event\":\"train\",\"step\":2.0,\"train_loss\":6.5,\"lr_mult\":1.0,\"train_time_ms\":1400.0}\n"
                   "{\"event\":\"train\",\"step\":3.0,\"train_loss\":6.1,\"lr_mult\":1.0,\"train_time_ms\":1900.0}\n"
                   "{\"event\":\"train\",\"step\":4.0,\"train_loss\":5.9,\"lr_mult\":1.0,\"train_time_ms\":2400.0}\n"
                   "{\"event\":\"resume\",\"step\":2.0,\"train_time_ms\":1400.0}\n"
                   "{\"event\":\"train\",\"step\":3.0,\"train_loss\":6.2,\"lr_mult\":1.0,\"train_time_ms\":1950.0}\n"
                   "{\"event\":\"train\",\"step\":4.0,\"train_loss\":5.8,\"lr_mult\":1.0,\"train_time_ms\":2450.0}\n");
  auto r = test::run_shell("cd " + std::string(PGOLF_SOURCE_DIR) + " && PLOT_KEEP_DATA=1 bash scripts/plot_runs.sh " +
                           dir.file("resumed") + " --output " + dir.file("r.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string marker = "data and gnuplot script kept in ";
  const auto at = r.output.find(marker);
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::string work = r.output.substr(at + marker.size(), r.output.find('\n', at) - at - marker.size());
  EXPECT_EQ(read_file(work + "/run0_loss.tsv"), "1.0\t6.9\n2.0\t6.5\n3.0\t6.2\n4.0\t5.8\n");
  std::filesystem::remove_all(work);
}

// Rank 1 is killed (or frozen) mid-run; rank 0 must stop with an error that
// names itself and the collective, within DIST_TIMEOUT_SECONDS, and leave no
// artifact behind.
void expect_peer_failure_is_reported(const std::string& signal, int timeout_s, int max_seconds) {
  TempDir dir;
  Config c = test::tiny_run(dir, 100000);
  c.runtime.num_threads = 1;
  c.runtime.dist_timeout_seconds = timeout_s;
  test::write_text(dir.file("tiny.env"), format_config(c));
  const std::string env = "WORLD_SIZE=2 MASTER_PORT=" + std::to_string(test::test_port(signal == "KILL" ? 1 : 2)) + " ";
  const std::string cmd = std::string(PGOLF_BINARY) + " train --config " + dir.file("tiny.env");
  auto r = test::run_shell("RANK=1 " + env + cmd + " > /dev/null 2>&1 & p1=$!; RANK=0 " + env + "timeout 120 " + cmd +
                           " & p0=$!; sleep 6; kill -" + signal + " $p1; t=$(date +%s); wait $p0; rc=$?; echo \"rc=$rc after $(( $(date +%s) - t ))s\"; kill -9 $p1 2>/dev/null; exit 0");
  EXPECT_NE(r.output.find("rank 0 of 2: collective '"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rc=1 after"), std::string::npos) << r.output;
  auto at = r.output.find("rc=1 after ");
  if (at != std::string::npos) {
    EXPECT_LE(std::stoi(r.output.substr(at + 11)), max_seconds) << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("run/final_model.pgolf")));
}

TEST(Dist, KilledRankMakesTheOtherExitWithAnError) { expect_peer_failure_is_reported("KILL", 20, 20); }

TEST(Dist, HungRankTimesOut) { expect_peer_failure_is_reported("STOP", 3, 15); }

// Ranks that disagree stop before any work, every one of them naming the
// entry and both values: here rank 1 has another SEED (which used to train
// the whole run and fail at the end), then another validation shard (which
// used to give a wrong score with exit 0).
TEST(Dist, RanksWithDifferentConfigurationOrDataStopBeforeTraining) {
  TempDir dir;
  Config c = test::tiny_run(dir, 4);
  c.runtime.num_threads = 1;
  test::write_text(dir.file("tiny.env"), format_config(c));
  std::filesystem::copy(c.run.data_path, dir.file("data"));
  std::size_t shards = 0;
  std::vector<std::uint16_t> val = test::read_split(dir.file("data"), "val", &shards);
  val[5] = static_cast<std::uint16_t>((val[5] + 1) % 300);
  write_shard(dir.file("data/fineweb_val_000000.bin"), val);
  const std::string cmd = std::string(PGOLF_BINARY) + " train --config " + dir.file("tiny.env");
  for (const auto& [rank1_set, entry] : {std::pair<std::string, std::string>{"--set SEED=5", "config.SEED: rank 0 has '1337', rank 1 has '5'"},
                                        {"--set DATA_PATH=" + dir.file("data"), "data.fineweb_val_000000.bin: rank 0 has 'bytes:"}}) {
    const std::string env = "WORLD_SIZE=2 MASTER_PORT=" + std::to_string(test::test_port(entry.size() % 7)) + " ";
    auto r = test::run_shell("(RANK=1 " + env + cmd + " " + rank1_set + " > " + dir.file("rank1.log") + " 2>&1; echo rc=$? >> " +
                             dir.file("rank1.log") + ") & RANK=0 " + env + cmd + "; rc=$?; wait; exit $rc");
    const std::string rank1 = read_file(dir.file("rank1.log"));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    for (const std::string& out : {r.output, rank1}) {
      EXPECT_NE(out.find("rank 1 differs from rank 0 in " + entry), std::string::npos) << out;
      EXPECT_EQ(out.find("step:1/"), std::string::npos) << "trained before the check:\n" << out;
    }
    EXPECT_NE(rank1.find("rc=1"), std::string::npos) << rank1;
    EXPECT_FALSE(std::filesystem::exists(dir.file("run"))) << "the run folder was made";
  }
}
