// SIGTERM and SIGINT stop `pgolf train` cleanly: after the current step, with
// a checkpoint of it, the weights saved, a `stopped:` line, no export, and
// the exit status a shell gives a process the signal ended (143, 130).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "helpers.h"
#include "pgolf/core/io.h"
#include "pgolf/model/weights.h"
#include "pgolf/train/checkpoint.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

namespace {

// Runs `pgolf train ARGS` in the background, waits (up to 2 minutes) until
// more than `skip` lines of train.log in `run_dir` hold `mark`, then sends
// `sig` (a name for kill). Returns the shell's output, ending with "rc=" and the exit status.
std::string train_until_signalled(const std::string& args, const std::string& run_dir, const std::string& mark, int skip,
                                  const std::string& sig) {
  const std::string log = run_dir + "/train.log";
  return test::run_shell("set -m; " + std::string(PGOLF_BINARY) + " train " + args + " > " + run_dir + ".out 2>&1 & job=$!\n" +
                         "for i in $(seq 2400); do [ \"$(grep -c '" + mark + "' " + log + " 2>/dev/null)\" -gt " +
                         std::to_string(skip) + " ] && break; sleep 0.05; done\n" + "kill -" + sig +
                         " $job; wait $job; echo \"rc=$?\"")
      .output;
}

int occurrences(const std::string& text, const std::string& part) {
  int n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// The step S of the log's last line "stopped: SIG after step:S/N ...; weights
// saved to RUN/model.safetensors", or -1 when the log does not end so.
long stop_step(const std::string& log, const std::string& sig, std::int64_t iterations, const std::string& run_dir) {
  std::smatch m;
  const std::regex last("stopped: " + sig + " after step:([0-9]+)/" + std::to_string(iterations) +
                        " train_time:[0-9]+ms; weights saved to " + run_dir + "/model\\.safetensors\n$");
  return std::regex_search(log, m, last) ? std::stol(m[1]) : -1;
}

}  // namespace

TEST(StopSignal, SigtermSavesTheWeightsAndACheckpointAndResumeContinues) {
  TempDir dir;
  Config c = test::tiny_run(dir, 100000);  // far more steps than the test waits for
  c.eval.prequant_eval = false;
  c.runtime.num_threads = 1;
  c.train.checkpoint_every = 100000;  // checkpoints on; the only one written is the stop's
  test::write_text(dir.file("tiny.env"), format_config(c));
  const std::string run = dir.file("run");

  std::string out = train_until_signalled("--config " + dir.file("tiny.env"), run, " train_loss:", 0, "TERM");
  EXPECT_NE(out.find("rc=143"), std::string::npos) << out << read_file(run + ".out");
  std::string log = read_file(run + "/train.log");
  const long stopped = stop_step(log, "SIGTERM", c.schedule.iterations, run);
  ASSERT_GT(stopped, 0) << log;
  EXPECT_EQ(log.find("done: steps"), std::string::npos) << log;
  EXPECT_NE(read_file(run + "/metrics.jsonl").find("{\"event\":\"stop\",\"signal\":15,\"step\":" + std::to_string(stopped) + ","),
            std::string::npos)
      << read_file(run + "/metrics.jsonl");
  EXPECT_FALSE(std::filesystem::exists(run + "/final_model.pgolf"));
  EXPECT_FALSE(load_safetensors(run + "/model.safetensors").empty());
  EXPECT_EQ(load_checkpoint(run + "/checkpoint.safetensors").step, stopped);

  // The resumed run goes on from the stop's step; Ctrl-C (SIGINT) stops it
  // again once it has logged a step of its own.
  out = train_until_signalled("--resume " + run, run, " train_loss:", occurrences(log, " train_loss:"), "INT");
  EXPECT_NE(out.find("rc=130"), std::string::npos) << out << read_file(run + ".out");
  log = read_file(run + "/train.log");
  EXPECT_NE(log.find("resumed from step " + std::to_string(stopped) + " ("), std::string::npos) << log;
  EXPECT_GT(stop_step(log, "SIGINT", c.schedule.iterations, run), stopped) << log;
  EXPECT_GT(load_checkpoint(run + "/checkpoint.safetensors").step, stopped);
}
