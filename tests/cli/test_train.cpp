// `pgolf train` and `pgolf eval` as the real binary, and the progress lines under a launcher.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>

#include <map>
#include <tuple>

#include "helpers.h"
#include "pgolf/optim/averaging.h"
#include "pgolf/train/train.h"
#include "pgolf/core/io.h"
#include "pgolf/export/quant.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

// `pgolf eval` on the artifact reproduces the training run's final line.
TEST(Training, EvalCommandReproducesTheFinalLine) {
  TempDir dir;
  Config c = test::tiny_run(dir, 8);
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto run = test::run_pgolf("train --config " + dir.file("tiny.env"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  auto final_line = [](const std::string& out) {
    auto at = out.find("final_sliding_window_exact");
    return at == std::string::npos ? std::string("missing") : out.substr(at, out.find('\n', at) - at);
  };
  // The log and the metrics open with what made the run; integers stay integers.
  EXPECT_EQ(read_file(dir.file("run/train.log")).rfind("provenance: pgolf:", 0), 0u);
  const std::string metrics = read_file(dir.file("run/metrics.jsonl"));
  EXPECT_EQ(metrics.rfind("{\"event\":\"provenance\",\"pgolf\":", 0), 0u) << metrics;
  EXPECT_NE(metrics.find("\"world_size\":\"1\",\"launcher\":\"single\"}"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("{\"event\":\"train\",\"step\":1,"), std::string::npos) << metrics;
  auto eval = test::run_pgolf("eval " + dir.file("run/final_model.pgolf") + " --config " + dir.file("tiny.env"));
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(final_line(run.output), "missing") << run.output;
  EXPECT_EQ(final_line(eval.output), final_line(run.output));
  EXPECT_NE(eval.output.find("compliance: evaluation (sliding window) "), std::string::npos) << eval.output;
  auto inspect = test::run_pgolf("inspect " + dir.file("run/final_model.pgolf"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("blocks.1.mlp.fc.weight"), std::string::npos);
  EXPECT_NE(inspect.output.find("(fits)"), std::string::npos);
}

// Depth recurrence switches on once, at its fraction of ITERATIONS, warm-up
// having run both shapes; the round trip and `pgolf eval` score the looped model.
TEST(Training, DepthRecurrenceSwitchesOnOnceAndStaysOnForScoring) {
  TempDir dir;
  Config c = test::tiny_run(dir, 12);
  c.model.num_layers = 3;
  c.model.loop_layers = LoopRange{1, 1};
  c.model.loop_repeats = 2;
  c.model.loop_start_frac = 0.5;
  c.model.skip_gates = true;
  c.train.warmup_steps = 2;
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto run = test::run_pgolf("train --config " + dir.file("tiny.env"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto at = run.output.find("loop:start step:6 layers:1-1 repeats:2");
  EXPECT_NE(at, std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("loop:start", at + 1), std::string::npos) << "switched on twice";
  auto final_line = [](const std::string& out) {
    auto f = out.find("final_sliding_window_exact");
    return f == std::string::npos ? std::string("missing") : out.substr(f, out.find('\n', f) - f);
  };
  auto eval = test::run_pgolf("eval " + dir.file("run/final_model.pgolf") + " --config " + dir.file("tiny.env"));
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(final_line(run.output), "missing");
  EXPECT_EQ(final_line(eval.output), final_line(run.output));
}

// A run on a pseudo-terminal (`script`) rewrites its progress line in place;
// the same run under mpirun's variables, or with PROGRESS=off, prints none of
// those codes; train.log never holds them.
TEST(Progress, TerminalRunsUnderALauncherStayGreppable) {
  TempDir dir;
  Config c = test::tiny_run(dir, 12);
  c.train.train_log_every = 100;  // steps 11 and 12 go to the progress line
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto on_pty = [&](const std::string& env, const std::string& run) {
    return test::run_shell("script -qec '" + env + " " + PGOLF_BINARY + " train --config " + dir.file("tiny.env") +
                           " --set RUN_ID=" + run + " --set PREQUANT_EVAL=0' /dev/null");
  };
  const std::string codes = "\r\033[K";
  auto plain = on_pty("", "plain");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_NE(plain.output.find(codes), std::string::npos) << "no progress line on a terminal";
  auto launched = on_pty("OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=1", "mpi");
  ASSERT_EQ(launched.exit_code, 0) << launched.output;
  EXPECT_EQ(launched.output.find(codes), std::string::npos);
  EXPECT_NE(launched.output.find("step:12/12 train_loss"), std::string::npos);
  auto off = on_pty("PROGRESS=off", "off");
  EXPECT_EQ(off.output.find(codes), std::string::npos);
  for (const char* run : {"plain", "mpi", "off"})
    EXPECT_EQ(read_file(dir.file(std::string(run) + "/train.log")).find('\r'), std::string::npos) << run;
}

// A non-finite validation score ends the run with an error naming it and a
// non-zero exit; here the weights hold a NaN from the start and the
// validation before the first step (VAL_LOSS_EVERY=1) sees it first.
TEST(Training, NonFiniteValidationScoreEndsTheRun) {
  TempDir dir;
  Config c = test::tiny_run(dir, 4);
  GPT m(c.model, {});
  m.param("tok_emb.weight").detach()[3].fill_(NAN);
  save_safetensors(dir.file("nan.safetensors"), m.parameters());
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto r = test::run_pgolf("train --config " + dir.file("tiny.env") + " --set INIT_WEIGHTS=" + dir.file("nan.safetensors") +
                           " --set VAL_LOSS_EVERY=1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("pgolf: error: validation: val_loss:nan val_bpb:nan is not finite"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("done: steps"), std::string::npos) << r.output;
}

// A run folder belongs to one run: a new run refuses an existing folder
// (leaving it as it was) and says what to do; --overwrite replaces it; a
// folder whose lock another live process holds is refused naming that
// process; RUN_ID cannot leave LOG_DIR.
TEST(RunFolder, IsNeverSharedOrOverwrittenUnasked) {
  TempDir dir;
  Config c = test::tiny_run(dir, 2);
  c.eval.prequant_eval = false;
  test::write_text(dir.file("tiny.env"), format_config(c));
  const std::string train = "train --config " + dir.file("tiny.env");
  auto r = test::run_pgolf(train);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string config_env = read_file(dir.file("run/config.env")), log = read_file(dir.file("run/train.log"));
  r = test::run_pgolf(train + " --set SEED=9");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("run folder '" + dir.file("run") + "' exists already: continue that run with `pgolf train --resume " +
                          dir.file("run") + "`, choose another RUN_ID, or replace it with `pgolf train --overwrite`"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(read_file(dir.file("run/config.env")), config_env);
  EXPECT_EQ(read_file(dir.file("run/train.log")), log);

  r = test::run_pgolf(train + " --overwrite --set SEED=9");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string replaced = read_file(dir.file("run/train.log"));
  EXPECT_EQ(replaced.find("done:"), replaced.rfind("done:")) << "the old log was kept:\n" << replaced;
  EXPECT_NE(read_file(dir.file("run/config.env")).find("SEED=9"), std::string::npos);

  const int fd = ::open(dir.file("run/run.lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string pid = std::to_string(::getpid());
  ASSERT_EQ(::ftruncate(fd, 0), 0);
  ASSERT_EQ(::pwrite(fd, pid.data(), pid.size(), 0), static_cast<ssize_t>(pid.size()));
  r = test::run_pgolf(train + " --overwrite");
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("run folder '" + dir.file("run") + "' is in use by another pgolf process (pid " + pid + ","),
            std::string::npos)
      << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("run/model.safetensors"))) << "a refused overwrite removed files";

  r = test::run_pgolf(train + " --set RUN_ID=../escaped");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("RUN_ID must be a plain folder name"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("escaped")));
}

// A fatal error is also the last line of train.log and an "error" event in
// metrics.jsonl, not only a line on stderr.
TEST(RunFolder, AFatalErrorEndsTheLogs) {
  TempDir dir;
  Config c = test::tiny_run(dir, 40);
  c.optim.matrix_lr = c.optim.scalar_lr = c.optim.tied_embed_lr = 1e4;
  c.optim.grad_clip_norm = 0;
  test::write_text(dir.file("tiny.env"), format_config(c));
  const auto r = test::run_pgolf("train --config " + dir.file("tiny.env"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("pgolf: error: "), std::string::npos) << r.output;
  std::string log = read_file(dir.file("run/train.log"));
  while (!log.empty() && log.back() == '\n') log.pop_back();
  const std::string last = log.substr(log.rfind('\n') + 1);
  EXPECT_EQ(last.rfind("error: ", 0), 0u) << last;
  EXPECT_NE(last.find("so the run stops here"), std::string::npos) << last;
  std::string metrics = read_file(dir.file("run/metrics.jsonl"));
  metrics.pop_back();
  EXPECT_EQ(metrics.substr(metrics.rfind('\n') + 1).rfind("{\"event\":\"error\",\"message\":\"", 0), 0u) << metrics;
}
