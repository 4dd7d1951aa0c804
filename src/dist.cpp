#include "pgolf/dist.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>

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
  if (const char* addr = getenv("MASTER_ADDR")) info.master_addr = addr;
  info.master_port = number("MASTER_PORT", info.master_port);
  if (info.world_size < 1 || 8 % info.world_size != 0)
    throw std::invalid_argument("world size " + std::to_string(info.world_size) + " (from " + info.launcher +
                                " variables) does not divide 8 (SPEC §1: grad_accum = 8 / world_size); launch 1, 2, 4 or 8 processes");
  if (info.rank >= info.world_size)
    throw std::invalid_argument("rank " + std::to_string(info.rank) + " is not below the world size " +
                                std::to_string(info.world_size));
  return info;
}

struct Dist::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
  std::string name;
};

Dist::Dist() = default;
Dist::~Dist() = default;

Dist::Dist(const LaunchInfo& info, const c10::Device& device, std::chrono::seconds timeout)
    : group_(std::make_unique<Group>()), rank_(info.rank), world_(info.world_size) {
  group_->timeout = timeout;
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(info.master_port);
  opts.isServer = info.rank == 0;
  opts.numWorkers = static_cast<std::size_t>(info.world_size);
  opts.waitWorkers = true;
  opts.timeout = timeout;
  try {
    group_->store = c10::make_intrusive<c10d::TCPStore>(info.master_addr, opts);
  } catch (const std::exception& e) {
    throw DistError("rank " + std::to_string(rank_) + " of " + std::to_string(world_) + ": rendezvous at " +
                    info.master_addr + ":" + std::to_string(info.master_port) + " failed: " + e.what() +
                    " (check MASTER_ADDR/MASTER_PORT and that every rank was started)");
  }
#ifdef PGOLF_WITH_CUDA
  if (device.is_cuda()) {
    auto nccl = c10d::ProcessGroupNCCL::Options::create();
    nccl->timeout = timeout;
    group_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(group_->store, rank_, world_, nccl);
    group_->name = "nccl";
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

namespace {

void wait(const c10::intrusive_ptr<c10d::Work>& work, int rank, int world, const std::string& what,
          std::chrono::milliseconds timeout) {
  auto fail = [&](const std::string& why) {
    return DistError("rank " + std::to_string(rank) + " of " + std::to_string(world) + ": collective '" + what +
                     "' failed or timed out (DIST_TIMEOUT_SECONDS=" + std::to_string(timeout.count() / 1000) + "): " + why);
  };
  try {
    work->wait(timeout);
  } catch (const c10::Error& e) {
    throw fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw fail(e.what());
  }
}

}  // namespace

void Dist::all_reduce_sum(at::Tensor& t, const std::string& what) {
  if (world_ == 1) return;
  std::vector<at::Tensor> v{t};
  wait(group_->backend->allreduce(v, c10d::AllreduceOptions{}), rank_, world_, what, group_->timeout);
}

void Dist::all_reduce_max(at::Tensor& t, const std::string& what) {
  if (world_ == 1) return;
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  wait(group_->backend->allreduce(v, opts), rank_, world_, what, group_->timeout);
}

void Dist::broadcast(at::Tensor& t, const std::string& what) {
  if (world_ == 1) return;
  std::vector<at::Tensor> v{t};
  wait(group_->backend->broadcast(v, c10d::BroadcastOptions{}), rank_, world_, what, group_->timeout);
}

void Dist::barrier(const std::string& what) {
  if (world_ == 1) return;
  wait(group_->backend->barrier(c10d::BarrierOptions{}), rank_, world_, what, group_->timeout);
}

std::string Dist::share(const std::string& key, const std::string& value) {
  if (world_ == 1) return value;
  try {
    if (rank_ == 0) group_->store->set(key, std::vector<std::uint8_t>(value.begin(), value.end()));
    auto bytes = group_->store->get(key);
    return std::string(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    throw DistError("rank " + std::to_string(rank_) + ": store key '" + key + "' failed: " + e.what());
  }
}

void Dist::average_gradients(const std::vector<at::Tensor>& params) {
  if (world_ == 1) return;
  at::NoGradGuard no_grad;
  constexpr std::int64_t kBucketBytes = 25 << 20;
  std::vector<std::vector<at::Tensor>> buckets(1);
  std::int64_t bytes = 0;
  for (const auto& p : params) {
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    const std::int64_t n = p.grad().numel() * p.grad().element_size();
    if (!buckets.back().empty() && (bytes + n > kBucketBytes || buckets.back().front().scalar_type() != p.grad().scalar_type())) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(p.grad());
    bytes += n;
  }
  std::vector<at::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (const auto& b : buckets) {
    std::vector<at::Tensor> pieces;
    for (const auto& g : b) pieces.push_back(g.reshape({-1}));
    flats.push_back(at::cat(pieces));
    std::vector<at::Tensor> v{flats.back()};
    works.push_back(group_->backend->allreduce(v, c10d::AllreduceOptions{}));
  }
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    wait(works[i], rank_, world_, "gradient all-reduce", group_->timeout);
    flats[i].div_(world_);
    std::int64_t offset = 0;
    for (auto& g : buckets[i]) {
      g.copy_(flats[i].narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
  }
}

void Dist::check_in_sync(const std::vector<at::Tensor>& params) {
  if (world_ == 1) return;
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

}  // namespace pgolf
