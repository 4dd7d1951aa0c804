// AtomicFile: temp file then rename, and the temp files of writers that no
// longer run; RunLog: a failed log write.
#include <sys/wait.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <numeric>

#include "helpers.h"
#include "pgolf/data/data.h"
#include "pgolf/train/transfer.h"
#include "pgolf/core/run.h"

using namespace pgolf;
using pgolf::test::TempDir;
using pgolf::test::write_text;

TEST(AtomicFile, LeavesNothingWhenNotCommitted) {
  TempDir dir;
  {
    AtomicFile f(dir.file("x"));
    f.write("partial");
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("x")));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 0);
  write_file_atomic(dir.file("x"), "whole");
  EXPECT_EQ(read_file(dir.file("x")), "whole");
}

// A killed writer's temp file goes when the path is next written; a running
// process's and another host's stay.
TEST(AtomicFile, RemovesTheTempFilesOfWritersThatNoLongerRun) {
  TempDir dir;
  const std::string host = test::host_name();
  const pid_t child = test::dead_pid();
  const std::string prefix = dir.file("x") + ".tmp.";
  const std::string dead = prefix + host + "." + std::to_string(child);
  const std::string alive = prefix + host + "." + std::to_string(::getppid());
  const std::string other_host = prefix + "another-host." + std::to_string(child);
  for (const auto& f : {dead, alive, other_host}) write_file_atomic(f, "left behind");
  write_file_atomic(dir.file("x"), "whole");
  EXPECT_EQ(read_file(dir.file("x")), "whole");
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(alive));
  EXPECT_TRUE(std::filesystem::exists(other_host));
}


// A log write that fails (here: train.log is /dev/full, as on a full disk)
// is an error at once, naming the file; the closing error line never throws.
TEST(RunLog, AFailedWriteIsAnErrorAtOnce) {
  TempDir dir;
  Config c;
  c.run.log_dir = dir.path();
  c.run.run_id = "full";
  std::filesystem::create_directories(dir.file("full"));
  std::filesystem::create_symlink("/dev/full", dir.file("full/train.log"));
  RunLog log(c);
  try {
    log.line("step:1");
    ADD_FAILURE() << "no error for a write to /dev/full";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot write '" + dir.file("full/train.log") + "'"), std::string::npos) << e.what();
  }
  log.error("the run's own error");  // noexcept: must not terminate
}
