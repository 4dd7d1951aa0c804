// `pgolf train --resume` as the real binary: the configuration check, and
// killed runs (one and two processes) resumed to bit-identical weights.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "helpers.h"
#include "pgolf/train/checkpoint.h"
#include "pgolf/core/io.h"
#include "pgolf/train/train.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::same_weights;
using test::TempDir;

namespace {

struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};

}  // namespace

TEST(Checkpoint, ResumeCommandNeedsARunFolderWithACheckpointAndTheSameConfiguration) {
  TempDir dir;
  Config c = test::tiny_run(dir, 6);
  c.eval.prequant_eval = false;
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto r = test::run_pgolf("train --resume " + dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("it has no config.env (not a run folder)"), std::string::npos) << r.output;
  r = test::run_pgolf("train --config " + dir.file("tiny.env"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_pgolf("train --resume " + dir.file("run"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("it has no checkpoint.safetensors (the run wrote none: set CHECKPOINT_EVERY or CHECKPOINT_MINUTES)"),
            std::string::npos)
      << r.output;
  r = test::run_pgolf("train --overwrite --config " + dir.file("tiny.env") + " --set CHECKPOINT_EVERY=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string config_env = read_file(dir.file("run/config.env"));
  r = test::run_pgolf("train --resume " + dir.file("run") + "/ --set SEED=5 --set MATRIX_LR=0.5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("pgolf: error: cannot resume from '" + dir.file("run/checkpoint.safetensors") +
                          "': the run would differ from the checkpoint's in SEED (checkpoint '1337', now '5'), MATRIX_LR"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(read_file(dir.file("run/config.env")), config_env) << "a refused resume leaves the run folder alone";
}

// SIGKILL a run after a checkpoint, resume it: the final weights are those
// of the same run never interrupted. `ranks` processes (1: as is; 2: by
// torchrun-style variables), each with one thread.
void expect_killed_run_resumes_bit_identically(int ranks, Config c, std::int64_t kill_after_checkpoint) {
  TempDir dir;
  c.run.log_dir = dir.path();
  c.eval.prequant_eval = false;
  c.runtime.num_threads = 1;
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto launch = [&](const std::string& args, int port, const std::string& out) {
    const std::string cmd = std::string(PGOLF_BINARY) + " train " + args;
    if (ranks == 1) return cmd + " > " + out + " 2>&1";
    const std::string env = "WORLD_SIZE=2 MASTER_PORT=" + std::to_string(port) + " ";
    return "(RANK=1 " + env + cmd + " > " + out + ".rank1 2>&1 & RANK=0 " + env + cmd + " > " + out + " 2>&1; rc=$?; wait; exit $rc)";
  };
  const int port = test::test_port(100 + 10 * ranks);
  Timer whole_time;
  auto whole = test::run_shell(launch("--config " + dir.file("tiny.env") + " --set RUN_ID=whole", port, dir.file("whole.out")));
  ASSERT_EQ(whole.exit_code, 0) << read_file(dir.file("whole.out"));
  const double whole_s = whole_time.seconds();

  // The crashed run checkpoints every CHECKPOINT_EVERY steps and is killed
  // (every process of it) once the checkpoint after step `kill_after_checkpoint` is written.
  Timer crash_time;
  const std::string mark = "checkpoint: step:" + std::to_string(kill_after_checkpoint) + " ";
  auto crash = test::run_shell(
      "set -m; " + launch("--config " + dir.file("tiny.env") + " --set RUN_ID=crashed --set CHECKPOINT_EVERY=" +
                              std::to_string(c.train.checkpoint_every), port + 1, dir.file("crashed.out")) +
      " & job=$!\n"
      "for i in $(seq 1200); do grep -q '" + mark + "' " + dir.file("crashed/train.log") + " 2>/dev/null && break; sleep 0.05; done\n"
      "kill -9 -- -$job; wait $job; echo \"killed rc=$?\"");
  const double crash_s = crash_time.seconds();
  EXPECT_NE(crash.output.find("killed rc=137"), std::string::npos) << crash.output;
  const std::string crashed_log = read_file(dir.file("crashed/train.log"));
  ASSERT_NE(crashed_log.find(mark), std::string::npos) << crashed_log;
  ASSERT_EQ(crashed_log.find("done: steps"), std::string::npos) << "the run ended before it was killed:\n" << crashed_log;
  ASSERT_FALSE(std::filesystem::exists(dir.file("crashed/model.safetensors")));

  const TrainState s = load_checkpoint(dir.file("crashed/checkpoint.safetensors"));
  Timer resume_time;
  auto resumed = test::run_shell(launch("--resume " + dir.file("crashed"), port + 2, dir.file("resumed.out")));
  const double resume_s = resume_time.seconds();
  const std::string out = read_file(dir.file("resumed.out"));
  ASSERT_EQ(resumed.exit_code, 0) << out << (ranks > 1 ? read_file(dir.file("resumed.out.rank1")) : "");
  EXPECT_GE(s.step, kill_after_checkpoint);
  EXPECT_LT(s.step, c.schedule.iterations);
  EXPECT_NE(out.find("resumed from step " + std::to_string(s.step) + " ("), std::string::npos) << out;
  const std::string log = read_file(dir.file("crashed/train.log"));  // appended to
  EXPECT_LT(log.find(mark), log.find("resumed from step"));
  EXPECT_NE(log.find("done: steps:" + std::to_string(c.schedule.iterations)), std::string::npos) << log;
  EXPECT_NE(read_file(dir.file("crashed/metrics.jsonl")).find("\"event\":\"resume\""), std::string::npos);
  EXPECT_TRUE(same_weights(dir.file("whole/model.safetensors"), dir.file("crashed/model.safetensors")))
      << "the resumed run's final weights differ from the uninterrupted run's";
  std::printf("[ timing ] %d process(es): uninterrupted %.1f s, killed after %.1f s (checkpoint of step %lld), resumed %.1f s\n",
              ranks, whole_s, crash_s, static_cast<long long>(s.step), resume_s);
}

// One process: SWA collecting across the checkpoint, depth recurrence on
// before it, QAT switching on after it, warm-up on resume.
TEST(Checkpoint, KilledRunResumesToBitIdenticalWeights) {
  TempDir data;
  Config c = test::tiny_run(data, 240);
  c.train.warmup_steps = 2;
  c.schedule.warmdown_iters = 240;
  c.averaging.swa_start_frac = 0.9;  // snapshots from step 26 on
  c.model.num_layers = 3;
  c.model.loop_layers = LoopRange{1, 1};
  c.model.loop_repeats = 2;
  c.model.loop_start_frac = 0.1;
  c.qat.qat_enabled = true;
  c.qat.qat_start_frac = 0.5;
  c.train.checkpoint_every = 20;
  c.train.val_loss_every = 100;
  expect_killed_run_resumes_bit_identically(1, c, 40);
}

// Two processes: each rank's Muon buffers gathered into rank 0's file, EMA.
TEST(Checkpoint, KilledTwoProcessRunResumesToBitIdenticalWeights) {
  TempDir data;
  Config c = test::tiny_run(data, 200);
  c.train.warmup_steps = 2;
  c.averaging.swa_enabled = false;
  c.averaging.ema_enabled = true;
  c.averaging.ema_decay = 0.9;
  c.train.checkpoint_every = 20;
  c.runtime.dist_timeout_seconds = 30;
  expect_killed_run_resumes_bit_identically(2, c, 40);
}
