#include "pgolf/dist/dist.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <string_view>
#include <thread>

#include "pgolf/core/runtime.h"

#ifdef PGOLF_WITH_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace pgolf {

LaunchInfo detect_launch(const Getenv& getenv) {
  LaunchInfo info;
  auto number = [&](const char* name, int fallback) {
    const char* v = getenv(name);
    if (!v) return fallback;
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 0 || n > 1 << 20)
      throw std::invalid_argument(std::string("environment variable ") + name + "='" + v + "' is not a valid number");
    return static_cast<int>(n);
  };
  struct Scheme {
    const char *launcher, *rank, *size, *local;
  };
  for (Scheme s : {Scheme{"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
                   Scheme{"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
                   Scheme{"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}}) {
    if (!getenv(s.rank) || !getenv(s.size)) continue;
    info.launcher = s.launcher;
    info.rank = number(s.rank, 0);
    info.world_size = number(s.size, 1);
    info.local_rank = number(s.local, info.rank);
    break;
  }
  for (const char* name : {"PGOLF_JOB_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "PMIX_NAMESPACE", "OMPI_MCA_orte_ess_jobid"}) {
    const char* v = getenv(name);
    if (!v || !*v || std::string_view(v) == "none") continue;
    info.job_id = std::string(name) + "=" + v;
    break;
  }
  if (const char* agent = getenv("TORCHELASTIC_USE_AGENT_STORE")) info.agent_store = std::string_view(agent) == "True";
  info.attempt = number("TORCHELASTIC_RESTART_COUNT", 0);
  if (const char* addr = getenv("MASTER_ADDR")) info.master_addr = addr;
  info.master_port = number("MASTER_PORT", info.master_port);
  if (info.world_size < 1 || 8 % info.world_size != 0)
    throw std::invalid_argument("world size " + std::to_string(info.world_size) + " (from " + info.launcher +
                                " variables) does not divide 8 (grad_accum = 8 / world_size); launch 1, 2, 4 or 8 processes");
  if (info.rank >= info.world_size)
    throw std::invalid_argument("rank " + std::to_string(info.rank) + " is not below the world size " +
                                std::to_string(info.world_size));
  return info;
}

namespace {

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

// Each rank counts itself in under its rank number, and reads the job id
// rank 0 published. A count above one, or another job id, means this
// process is a rank of another job (or a rank started twice) that reached
// this job's store through a shared MASTER_PORT: it stops here, before the
// backend's rendezvous would wait for peers that never answer.
void check_joins_own_job(c10d::Store& store, const LaunchInfo& info) {
  const std::string where = info.master_addr + ":" + std::to_string(info.master_port);
  const std::string who = "rank " + std::to_string(info.rank) + " of " + std::to_string(info.world_size);
  const std::string fix = "give each job its own MASTER_PORT (scripts/launch.sh picks a free one when none is set)";
  const std::int64_t joined = store.add("pgolf/joined/" + std::to_string(info.rank), 1);
  if (joined > 1)
    throw DistError(who + ": the job at " + where + " already has a rank " + std::to_string(info.rank) +
                    ": this process belongs to another job started on the same MASTER_PORT, or was started twice; " + fix);
  const std::string mine = info.job_id.empty() ? "(none)" : info.job_id;
  if (info.rank == 0) store.set("pgolf/job", bytes_of(mine));
  const std::vector<std::uint8_t> got = store.get("pgolf/job");
  const std::string theirs(got.begin(), got.end());
  if (theirs != mine)
    throw DistError(who + ": the job at " + where + " is " + theirs + ", this rank's is " + mine +
                    ": ranks of two jobs met on one MASTER_PORT; " + fix);
}

}  // namespace

struct Dist::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
  std::string name;
  // NCCL: collectives complete on the GPU, so a wait can be a wait of the
  // current CUDA stream instead of the host (see complete()).
  bool stream_waits = false;
  std::int64_t main_phases = 0;  // on_main calls so far: each has its own store key
};

Dist::Dist() = default;
Dist::~Dist() = default;

Dist::Dist(const LaunchInfo& info, const c10::Device& device, std::chrono::seconds timeout)
    : group_(std::make_unique<Group>()), rank_(info.rank), world_(info.world_size) {
  group_->timeout = timeout;
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(info.master_port);
  opts.isServer = info.rank == 0 && !info.agent_store;
  opts.numWorkers = static_cast<std::size_t>(info.world_size);
  opts.waitWorkers = true;
  opts.timeout = timeout;
  try {
    group_->store = c10::make_intrusive<c10d::TCPStore>(info.master_addr, opts);
    if (info.agent_store)
      group_->store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(info.attempt), group_->store);
  } catch (const std::exception& e) {
    const std::string why = error_message(e);
    // Rank 0 hosts the store: a port in use is most often another job's.
    const std::string hint = why.find("EADDRINUSE") != std::string::npos
                                 ? "another process (another job?) listens on MASTER_PORT=" + std::to_string(info.master_port) +
                                       ": give this job its own MASTER_PORT (scripts/launch.sh picks a free one when none is set)"
                                 : "check MASTER_ADDR/MASTER_PORT and that every rank was started";
    throw DistError("rank " + std::to_string(rank_) + " of " + std::to_string(world_) + ": rendezvous at " +
                    info.master_addr + ":" + std::to_string(info.master_port) + " failed: " + why + " (" + hint + ")");
  }
  check_joins_own_job(*group_->store, info);
#ifdef PGOLF_WITH_CUDA
  if (device.is_cuda()) {
    auto nccl = c10d::ProcessGroupNCCL::Options::create();
    nccl->timeout = timeout;
    group_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(group_->store, rank_, world_, nccl);
    group_->name = "nccl";
    group_->stream_waits = true;
    return;
  }
#endif
  (void)device;
  auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
  // GLOO_SOCKET_IFNAME picks the interface; a local rendezvous uses loopback;
  // otherwise the address this host's name resolves to (multi-node).
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (info.master_addr == "127.0.0.1" || info.master_addr == "localhost")
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  group_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, rank_, world_, gloo);
  group_->name = "gloo";
}

// Gloo: the host waits, up to the group's timeout. NCCL: unless the host
// itself must know the collective is done (`host_waits`, e.g. a barrier
// before reading a file another rank wrote), only the current CUDA stream
// waits and the host goes on queueing work; a collective that outlives the
// timeout is then ended by NCCL's watchdog, and its async error handling
// (TORCH_NCCL_ASYNC_ERROR_HANDLING, default 3) ends the process with the
// watchdog's message naming the operation.
void Dist::complete(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what, bool host_waits) {
  auto fail = [&](const std::string& why) {
    return DistError("rank " + std::to_string(rank_) + " of " + std::to_string(world_) + ": collective '" + what +
                     "' failed or timed out (DIST_TIMEOUT_SECONDS=" + std::to_string(group_->timeout.count() / 1000) +
                     "): " + why);
  };
  try {
    if (group_->stream_waits && !host_waits)
      work->wait();  // no timeout given: NCCL makes the current stream wait, the host does not
    else
      work->wait(group_->timeout);
  } catch (const std::exception& e) {
    throw fail(error_message(e));
  }
}

void Dist::all_reduce_sum(at::Tensor& t, const std::string& what) {
  if (!group_) return;
  std::vector<at::Tensor> v{t};
  complete(group_->backend->allreduce(v, c10d::AllreduceOptions{}), what, false);
}

void Dist::all_reduce_max(at::Tensor& t, const std::string& what) {
  if (!group_) return;
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  complete(group_->backend->allreduce(v, opts), what, false);
}

void Dist::broadcast(at::Tensor& t, const std::string& what) {
  if (!group_) return;
  std::vector<at::Tensor> v{t};
  complete(group_->backend->broadcast(v, c10d::BroadcastOptions{}), what, false);
}

void Dist::barrier(const std::string& what) {
  if (!group_) return;
  complete(group_->backend->barrier(c10d::BarrierOptions{}), what, true);
}

std::string Dist::share(const std::string& key, const std::string& value) {
  if (!group_) return value;
  try {
    if (rank_ == 0) group_->store->set(key, std::vector<std::uint8_t>(value.begin(), value.end()));
    auto bytes = group_->store->get(key);
    return std::string(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    throw DistError("rank " + std::to_string(rank_) + ": store key '" + key + "' failed: " + error_message(e));
  }
}

std::vector<std::string> Dist::gather_strings(const std::string& key, const std::string& value) {
  if (!group_) return {value};
  std::vector<std::string> all;
  try {
    group_->store->set(key + "/" + std::to_string(rank_), std::vector<std::uint8_t>(value.begin(), value.end()));
    for (int r = 0; r < world_; ++r) {
      auto bytes = group_->store->get(key + "/" + std::to_string(r));
      all.emplace_back(bytes.begin(), bytes.end());
    }
  } catch (const std::exception& e) {
    throw DistError("rank " + std::to_string(rank_) + ": store key '" + key + "' failed: " + error_message(e));
  }
  return all;
}

// Rank 0 reports the end of the phase through the store: "done", or
// "error:" and its message. The others poll for that key: a store round trip
// every 200 ms, and no collective pending that a timeout could end.
void Dist::on_main(const std::string& what, const std::function<void()>& work, std::chrono::seconds bound) {
  if (!group_) return work();
  const std::string key = "on_main/" + std::to_string(group_->main_phases++);
  const std::string who = "rank " + std::to_string(rank_) + " of " + std::to_string(world_);
  if (rank_ == 0) {
    auto report = [&](const std::string& v) { group_->store->set(key, std::vector<std::uint8_t>(v.begin(), v.end())); };
    try {
      work();
    } catch (const std::exception& e) {
      report(std::string("error:") + e.what());
      throw;
    }
    report("done");
    return;
  }
  std::string outcome;
  try {
    const auto start = std::chrono::steady_clock::now();
    while (!group_->store->check({key})) {
      if (std::chrono::steady_clock::now() - start > bound)
        throw DistError(who + ": waited " + std::to_string(bound.count()) + " s for rank 0 to finish " + what +
                        " (MAIN_PHASE_TIMEOUT_SECONDS): rank 0 is slower than that or has stopped; raise "
                        "MAIN_PHASE_TIMEOUT_SECONDS for a long export");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const auto bytes = group_->store->get(key);
    outcome.assign(bytes.begin(), bytes.end());
  } catch (const DistError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistError(who + ": lost rank 0 while waiting for it to finish " + what + ": " + error_message(e));
  }
  if (outcome.rfind("error:", 0) == 0) throw DistError(who + ": rank 0 failed in " + what + ": " + outcome.substr(6));
}

struct Dist::Pending {
  c10::intrusive_ptr<c10d::Work> work;
};

std::shared_ptr<Dist::Pending> Dist::all_reduce_sum_async(at::Tensor& t) {
  if (!group_) return nullptr;
  std::vector<at::Tensor> v{t};
  return std::make_shared<Pending>(Pending{group_->backend->allreduce(v, c10d::AllreduceOptions{})});
}

void Dist::wait(const std::shared_ptr<Pending>& pending, const std::string& what) {
  if (pending) complete(pending->work, what, false);
}

void Dist::check_in_sync(const std::vector<at::Tensor>& params) {
  if (!group_) return;
  at::NoGradGuard no_grad;
  at::Tensor mismatch = at::zeros({}, params.front().options().dtype(at::kFloat));
  std::int64_t first_bad = -1;
  for (std::size_t i = 0; i < params.size(); ++i) {
    at::Tensor copy = params[i].detach().clone();
    broadcast(copy, "weight sync check");
    if (!at::equal(copy, params[i].detach()) && first_bad < 0) first_bad = static_cast<std::int64_t>(i);
  }
  if (first_bad >= 0) mismatch.fill_(1.0f);
  all_reduce_max(mismatch, "weight sync check");
  if (mismatch.item<float>() > 0)
    throw DistError("ranks hold different weights after training" +
                    (first_bad >= 0 ? " (rank " + std::to_string(rank_) + " differs from rank 0 in parameter " +
                                          std::to_string(first_bad) + ")"
                                    : std::string()));
}

void Dist::gather_to_main(const std::vector<at::Tensor>& ts, const std::vector<int>& owners, const std::string& what) {
  if (!group_) return;
  at::NoGradGuard no_grad;
  std::vector<std::size_t> sent;
  std::vector<at::Tensor> bytes;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    if (owners[i] == 0) continue;
    const at::Tensor b = ts[i].detach().contiguous().view({-1}).view(at::kByte);
    bytes.push_back(owners[i] == rank_ ? b : at::zeros_like(b));
    sent.push_back(i);
  }
  if (sent.empty()) return;
  at::Tensor flat = at::cat(bytes);
  all_reduce_sum(flat, what);
  if (rank_ != 0) return;
  std::int64_t offset = 0;
  for (std::size_t i : sent) {
    const at::Tensor& t = ts[i];
    const std::int64_t n = t.numel() * t.element_size();
    // A copy first: a view as a wider type needs an aligned start.
    t.detach().copy_(flat.narrow(0, offset, n).clone().view(t.scalar_type()).view(t.sizes()));
    offset += n;
  }
}

}  // namespace pgolf

namespace pgolf {

struct GradientSync::Bucket {
  std::vector<std::size_t> params;
  std::vector<at::Tensor> grads;
  std::int64_t bytes = 0;
  at::Tensor flat;
  std::shared_ptr<Dist::Pending> pending;
};

GradientSync::GradientSync(Dist& dist, const std::vector<at::Tensor>& params)
    : dist_(dist), params_(params), seen_(params.size(), false) {
  if (dist_.world_size() == 1) return;
  for (std::size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(params_[i].register_hook([this, i](const at::Tensor& grad) {
      if (!armed_) return;
      // The gradient autograd is about to accumulate, plus what is already there.
      const at::Tensor& acc = params_[i].grad();
      add(i, acc.defined() ? acc + grad : grad.clone());
    }));
}

GradientSync::~GradientSync() {
  for (std::size_t i = 0; i < hooks_.size(); ++i) params_[i].remove_hook(hooks_[i]);
}

void GradientSync::arm() {
  if (dist_.world_size() == 1) return;
  std::fill(seen_.begin(), seen_.end(), false);
  buckets_.clear();
  armed_ = true;
}

void GradientSync::reset() {
  armed_ = false;
  buckets_.clear();
}

void GradientSync::add(std::size_t index, const at::Tensor& full_grad) {
  constexpr std::int64_t kBucketBytes = 25 << 20;
  if (buckets_.empty() || buckets_.back()->flat.defined()) buckets_.push_back(std::make_unique<Bucket>());
  Bucket& b = *buckets_.back();
  b.params.push_back(index);
  b.grads.push_back(full_grad.reshape({-1}));
  b.bytes += full_grad.numel() * full_grad.element_size();
  seen_[index] = true;
  if (b.bytes >= kBucketBytes) launch();
}

void GradientSync::launch() {
  Bucket& b = *buckets_.back();
  b.flat = at::cat(b.grads);
  b.grads.clear();
  b.pending = dist_.all_reduce_sum_async(b.flat);
}

void GradientSync::finish() {
  if (dist_.world_size() == 1) return;
  armed_ = false;
  at::NoGradGuard no_grad;
  // Parameters the last micro-batch did not reach still need their sum.
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (!seen_[i]) add(i, params_[i].grad().defined() ? params_[i].grad() : at::zeros_like(params_[i]));
  if (!buckets_.empty() && !buckets_.back()->flat.defined()) launch();
  for (auto& b : buckets_) {
    dist_.wait(b->pending, "gradient all-reduce");
    b->flat.div_(dist_.world_size());
    std::int64_t offset = 0;
    for (std::size_t i : b->params) {
      const at::Tensor& p = params_[i];
      p.mutable_grad() = b->flat.narrow(0, offset, p.numel()).view_as(p).clone();
      offset += p.numel();
    }
  }
  buckets_.clear();
}

}  // namespace pgolf
