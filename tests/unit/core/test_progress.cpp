// Progress lines: shown only on a terminal without a launcher unless forced.
#include <gtest/gtest.h>

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

// In-place progress lines: PROGRESS=on/off decide; auto wants a terminal and
// no launcher (OpenMPI gives each rank a pseudo-terminal, and the ranks'
// output then lands in one log file).
TEST(Progress, OnlyOnATerminalWithoutALauncherUnlessForced) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  };
  const std::map<std::string, std::string> none, mpirun = {{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "8"}},
                                                 slurm = {{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}};
  EXPECT_TRUE(progress_wanted("auto", true, env(none)));
  EXPECT_FALSE(progress_wanted("auto", false, env(none)));
  EXPECT_FALSE(progress_wanted("auto", true, env(mpirun)));
  EXPECT_FALSE(progress_wanted("auto", true, env(slurm)));
  EXPECT_FALSE(progress_wanted("auto", true, env({{"RANK", "0"}, {"WORLD_SIZE", "3"}})));  // malformed: still a launcher
  EXPECT_TRUE(progress_wanted("on", false, env(mpirun)));
  EXPECT_FALSE(progress_wanted("off", true, env(none)));
}

