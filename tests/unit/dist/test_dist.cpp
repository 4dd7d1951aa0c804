// Launch detection, the collectives of two in-process ranks over Gloo, sharded Muon.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <thread>

#include "helpers.h"
#include "pgolf/dist/dist.h"
#include "pgolf/core/io.h"
#include "pgolf/optim/optim.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

namespace {

Getenv env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

// A port for this test process (ctest runs each test in its own process).
std::string launch_error(std::map<std::string, std::string> vars) {
  try {
    detect_launch(env_of(vars));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(LaunchDetection, EachLaunchersVariables) {
  LaunchInfo single = detect_launch(env_of({}));
  EXPECT_EQ(single.launcher, "single");
  EXPECT_EQ(single.world_size, 1);
  EXPECT_EQ(single.master_addr, "127.0.0.1");
  EXPECT_EQ(single.master_port, 29500);

  LaunchInfo t = detect_launch(env_of({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.2"}, {"MASTER_PORT", "1234"}}));
  EXPECT_EQ(t.launcher, "torchrun");
  EXPECT_EQ(t.rank, 3);
  EXPECT_EQ(t.world_size, 4);
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.master_addr, "10.0.0.2");
  EXPECT_EQ(t.master_port, 1234);

  LaunchInfo m = detect_launch(
      env_of({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "5"}}));
  EXPECT_EQ(m.launcher, "openmpi");
  EXPECT_EQ(m.rank, 5);
  EXPECT_EQ(m.world_size, 8);
  EXPECT_EQ(m.local_rank, 5);

  LaunchInfo s = detect_launch(env_of({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"}}));
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 1);
  EXPECT_EQ(s.local_rank, 0);

  // The job id: pgolf's own (launch.sh) first, then the launcher's.
  EXPECT_EQ(single.job_id, "");
  EXPECT_EQ(t.job_id, "");
  EXPECT_EQ(detect_launch(env_of({{"SLURM_JOB_ID", "77"}, {"PGOLF_JOB_ID", "a-1"}})).job_id, "PGOLF_JOB_ID=a-1");
  EXPECT_EQ(detect_launch(env_of({{"SLURM_JOB_ID", "77"}, {"TORCHELASTIC_RUN_ID", "none"}})).job_id, "SLURM_JOB_ID=77");
  EXPECT_EQ(detect_launch(env_of({{"PMIX_NAMESPACE", "prterun-x-1@1"}})).job_id, "PMIX_NAMESPACE=prterun-x-1@1");

  // torchrun's variables win over a surrounding Slurm allocation's.
  EXPECT_EQ(detect_launch(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "7"}, {"SLURM_NTASKS", "8"}})).launcher,
            "torchrun");
}

TEST(LaunchDetection, BadLaunchesAreClearErrors) {
  EXPECT_NE(launch_error({{"RANK", "0"}, {"WORLD_SIZE", "3"}}).find("world size 3 (from torchrun variables) does not divide 8"),
            std::string::npos);
  EXPECT_NE(launch_error({{"RANK", "4"}, {"WORLD_SIZE", "4"}}).find("rank 4 is not below the world size 4"), std::string::npos);
  EXPECT_NE(launch_error({{"RANK", "x"}, {"WORLD_SIZE", "2"}}).find("RANK='x' is not a valid number"), std::string::npos);
}

TEST(Dist, ARankOfAnotherJobStopsAtTheJoinInsteadOfWaiting) {
  const int port = test::test_port(60);
  test::run_two_ranks(port, [&](Dist& dist, int rank) {
    if (rank == 0) {
      // While job A's two ranks are joined, processes of other jobs reach its port.
      auto join_error = [&](const LaunchInfo& info) {
        const auto t0 = std::chrono::steady_clock::now();
        std::string what;
        try {
          Dist intruder(info, at::kCPU, std::chrono::seconds(60));
        } catch (const DistError& e) {
          what = e.what();
        }
        // Stopped at the join, not after the backend's rendezvous timed out (60 s).
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30)) << what;
        return what;
      };
      LaunchInfo second_rank_1;  // no job id, as when ranks are started by hand
      second_rank_1.rank = 1;
      second_rank_1.world_size = 2;
      second_rank_1.master_port = port;
      EXPECT_NE(join_error(second_rank_1)
                    .find("rank 1 of 2: the job at 127.0.0.1:" + std::to_string(port) +
                          " already has a rank 1: this process belongs to another job started on the same MASTER_PORT"),
                std::string::npos);
      LaunchInfo other_job;  // a rank number the job lacks, another job id
      other_job.rank = 3;
      other_job.world_size = 4;
      other_job.master_port = port;
      other_job.job_id = "PGOLF_JOB_ID=b";
      EXPECT_NE(join_error(other_job).find("the job at 127.0.0.1:" + std::to_string(port) +
                                           " is (none), this rank's is PGOLF_JOB_ID=b: ranks of two jobs met on one MASTER_PORT"),
                std::string::npos);
    }
    // Job A goes on untouched.
    at::Tensor one = at::ones({1});
    dist.all_reduce_sum(one, "after the intruders");
    EXPECT_EQ(one.item<float>(), 2.0f);
  });
}

TEST(LaunchDetection, TorchrunsAgentStoreAndRestartAttempt) {
  const LaunchInfo t = detect_launch(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                             {"TORCHELASTIC_RESTART_COUNT", "2"}}));
  EXPECT_TRUE(t.agent_store);
  EXPECT_EQ(t.attempt, 2);
  EXPECT_FALSE(detect_launch(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}})).agent_store);
}

TEST(Dist, MuonShardingGivesTheUnshardedUpdate) {
  auto make = [](std::uint64_t seed, std::vector<at::Tensor>* grads) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::vector<at::Tensor> ps;
    for (auto shape : std::vector<std::vector<std::int64_t>>{{16, 8}, {8, 24}, {12, 12}}) {
      ps.push_back(at::normal(0.0, 1.0, shape, gen, at::kFloat).requires_grad_(true));
      grads->push_back(at::normal(0.0, 1.0, shape, gen, at::kFloat));
    }
    return ps;
  };
  std::vector<at::Tensor> g0;
  auto ref = make(1, &g0);
  Muon unsharded(ref, {5, 0.04, at::kFloat, {}});
  for (int step = 0; step < 2; ++step) {
    for (std::size_t i = 0; i < ref.size(); ++i) ref[i].mutable_grad() = g0[i] * (step + 1);
    unsharded.step(0.02, 0.9);
  }
  std::vector<std::vector<at::Tensor>> results(2);
  test::run_two_ranks(test::test_port(), [&](Dist& dist, int rank) {
    std::vector<at::Tensor> g;
    auto ps = make(1, &g);
    Muon sharded(ps, {5, 0.04, at::kFloat, {rank, 2, [&](at::Tensor& t) { dist.all_reduce_sum(t, "muon"); }}});
    for (int step = 0; step < 2; ++step) {
      for (std::size_t i = 0; i < ps.size(); ++i) ps[i].mutable_grad() = g[i] * (step + 1);
      sharded.step(0.02, 0.9);
    }
    results[rank] = ps;
  });
  for (int r = 0; r < 2; ++r)
    for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_TRUE(at::equal(results[r][i], ref[i])) << "rank " << r << " matrix " << i;
}

// Rank 0 ends with each tensor's owner's bytes, whatever they are (-0.0,
// NaN, bf16, int64), and the other ranks' tensors stay as they were.
TEST(Dist, GatherToMainTakesEachTensorFromItsOwner) {
  auto owned = [](int rank) {
    return std::vector<at::Tensor>{at::full({2, 3}, rank == 0 ? 1.0f : 5.0f),
                                   rank == 1 ? at::tensor({-0.0f, NAN, 1e-40f, -3.0f}) : at::full({4}, 7.0f),
                                   at::full({}, rank == 1 ? 2.5 : 9.0, at::kBFloat16), at::full({4}, rank * 10 + 3, at::kLong)};
  };
  const std::vector<int> owners = {0, 1, 1, 1};
  std::vector<std::vector<at::Tensor>> results(2);
  test::run_two_ranks(test::test_port(4), [&](Dist& dist, int rank) {
    results[rank] = owned(rank);
    dist.gather_to_main(results[rank], owners, "gather test");
  });
  auto bytes = [](const at::Tensor& t) { return t.contiguous().view({-1}).view(at::kByte); };
  const auto want0 = owned(0), want1 = owned(1);
  for (std::size_t i = 0; i < owners.size(); ++i) {
    EXPECT_TRUE(at::equal(bytes(results[0][i]), bytes((owners[i] == 0 ? want0 : want1)[i]))) << "rank 0, tensor " << i;
    EXPECT_TRUE(at::equal(bytes(results[1][i]), bytes(want1[i]))) << "rank 1, tensor " << i;
  }
}


// What rank 0 does alone is not bounded by the collective timeout (1 s here):
// the other rank waits up to its own bound, gets rank 0's error when rank 0
// fails, and gives up naming the phase after its bound.
TEST(Dist, OnMainWaitsBeyondTheCollectiveTimeoutAndSharesRankZerosError) {
  using std::chrono::seconds;
  std::vector<std::string> errors(2);
  std::vector<int> done(2, 0);
  test::run_two_ranks(
      test::test_port(5),
      [&](Dist& dist, int rank) {
        auto slow = [&] { std::this_thread::sleep_for(std::chrono::milliseconds(2500)); };
        dist.on_main("the slow phase", [&] { slow(), ++done[rank]; }, seconds(30));
        dist.barrier("after the slow phase");  // the group still works
        try {
          dist.on_main("the failing phase", [] { throw std::runtime_error("disk full"); }, seconds(30));
        } catch (const std::exception& e) {
          errors[rank] = e.what();
        }
        try {
          dist.on_main("the export", slow, seconds(1));
        } catch (const DistError& e) {
          errors[rank] += std::string(" | ") + e.what();
        }
      },
      seconds(1));
  EXPECT_EQ(done, (std::vector<int>{1, 0}));  // the work ran on rank 0 only
  EXPECT_EQ(errors[0], "disk full");
  EXPECT_NE(errors[1].find("rank 1 of 2: rank 0 failed in the failing phase: disk full"), std::string::npos) << errors[1];
  EXPECT_NE(errors[1].find("rank 1 of 2: waited 1 s for rank 0 to finish the export (MAIN_PHASE_TIMEOUT_SECONDS)"),
            std::string::npos)
      << errors[1];
}
