// Multi-process runs over PyTorch's c10d: launch detection (torchrun, mpirun,
// Slurm), a TCPStore rendezvous, and the collectives training needs, on
// ProcessGroupNCCL (CUDA) or ProcessGroupGloo (CPU). Every collective carries
// a name and the DIST_TIMEOUT_SECONDS limit, never a silent hang: on Gloo a
// dead or hung peer becomes a DistError naming this rank and the operation;
// on NCCL the host does not wait for collectives (the CUDA stream does) and
// NCCL's watchdog ends the process with its message after the same limit.
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgolf/config/config.h"

namespace c10d {
class Work;
}

namespace pgolf {

struct LaunchInfo {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "single";  // torchrun, openmpi, slurm or single
  std::string job_id;                // what names the job to its ranks; empty when the launcher names none
  // torchrun's agent hosts the store at MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True):
  // every rank joins it as a client, under a prefix of the restart attempt
  // (TORCHELASTIC_RESTART_COUNT), so a restarted job sees none of an earlier attempt's keys.
  bool agent_store = false;
  int attempt = 0;
};

// Rank, world size and local rank from torchrun-style variables (RANK,
// WORLD_SIZE, LOCAL_RANK), else OpenMPI's (OMPI_COMM_WORLD_RANK, _SIZE,
// _LOCAL_RANK), else Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID);
// MASTER_ADDR / MASTER_PORT for the rendezvous (default 127.0.0.1:29500).
// Without any of them: one process. The world size must divide 8 (docs/MODEL.md ("Data")).
// The job id comes from PGOLF_JOB_ID (scripts/launch.sh sets one), else
// the launcher's own: TORCHELASTIC_RUN_ID (torchrun, unless "none"),
// SLURM_JOB_ID, or OpenMPI's PMIX_NAMESPACE / OMPI_MCA_orte_ess_jobid.
LaunchInfo detect_launch(const Getenv& getenv);

struct DistError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Dist {
 public:
  Dist();  // one process: no process group, every collective is the identity
  // Joins the group of `info` on `device` (NCCL for CUDA, Gloo for CPU); the
  // collectives run even for a group of one. Before the backend's rendezvous,
  // a rank that does not belong to the job at MASTER_PORT (its rank number
  // already joined, or rank 0's job id differs) throws a DistError at once.
  Dist(const LaunchInfo& info, const c10::Device& device, std::chrono::seconds timeout);
  ~Dist();
  Dist(const Dist&) = delete;
  Dist& operator=(const Dist&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  bool is_main() const { return rank_ == 0; }

  void all_reduce_sum(at::Tensor& t, const std::string& what);
  void all_reduce_max(at::Tensor& t, const std::string& what);
  void broadcast(at::Tensor& t, const std::string& what);  // from rank 0
  void barrier(const std::string& what);
  // Runs `work` on rank 0 alone (an export, a checkpoint write) while the
  // other ranks wait for it through the store, up to `bound` instead of
  // DIST_TIMEOUT_SECONDS; when `work` throws on rank 0, every other rank
  // throws a DistError carrying rank 0's message. `what` names the phase in
  // errors ("the export").
  void on_main(const std::string& what, const std::function<void()>& work, std::chrono::seconds bound);
  // Rank 0's value of `value` on every rank (through the store).
  std::string share(const std::string& key, const std::string& value);
  // Every rank's `value`, by rank, on every rank (through the store).
  std::vector<std::string> gather_strings(const std::string& key, const std::string& value);
  // Starts a sum over ranks of `t` without waiting for it.
  struct Pending;
  std::shared_ptr<Pending> all_reduce_sum_async(at::Tensor& t);
  void wait(const std::shared_ptr<Pending>& pending, const std::string& what);
  // Throws unless every rank holds bit-identical copies of `params`.
  void check_in_sync(const std::vector<at::Tensor>& params);
  // Afterwards rank 0's ts[i] is bit for bit rank owners[i]'s (the other
  // ranks' are unchanged): each rank sends the bytes of the tensors it owns
  // and zeros for the others' (rank 0's own stay out), summed as uint8 in one
  // all-reduce, so every byte is its owner's exactly.
  void gather_to_main(const std::vector<at::Tensor>& ts, const std::vector<int>& owners, const std::string& what);

 private:
  struct Group;
  // Waits for `work` as the backend allows without stalling the host (see dist.cpp).
  void complete(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what, bool host_waits);
  std::unique_ptr<Group> group_;
  int rank_ = 0, world_ = 1;
};

// Gradient averaging over ranks, overlapped with the backward pass of the
// last micro-batch: a hook on every parameter sees its gradient as soon as
// autograd produces it, adds what earlier micro-batches accumulated, and packs
// it into a bucket; each full bucket (25 MB) is all-reduced while backward
// goes on. finish() waits for the buckets and writes the averages into .grad.
class GradientSync {
 public:
  GradientSync(Dist& dist, const std::vector<at::Tensor>& params);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;
  void arm();     // call before the last micro-batch's backward
  void finish();  // call after it
  // Drops what an arm() without its finish() collected (a backward that
  // failed, e.g. a failed CUDA graph capture): the next step starts afresh.
  void reset();

 private:
  struct Bucket;
  void add(std::size_t index, const at::Tensor& full_grad);
  void launch();
  Dist& dist_;
  std::vector<at::Tensor> params_;
  std::vector<unsigned> hooks_;
  std::vector<bool> seen_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  bool armed_ = false;
};

}  // namespace pgolf
