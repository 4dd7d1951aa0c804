#include "pgolf/core/runtime.h"

#include "pgolf/config/config.h"
#include "pgolf/kernels/fused.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <torch/version.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#ifdef PGOLF_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace pgolf {

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

int init_threads(long num_threads) {
  int n = num_threads > 0 ? static_cast<int>(num_threads) : available_cores();
  at::set_num_threads(n);
  return at::get_num_threads();
}

namespace {

int cuda_device_count() {
#ifdef PGOLF_WITH_CUDA
  return static_cast<int>(c10::cuda::device_count());
#else
  return 0;
#endif
}

}  // namespace

c10::Device select_device(const std::string& requested, int local_rank) {
  const int gpus = cuda_device_count();
  if (requested == "cpu") return c10::kCPU;
  if (requested == "cuda" || (requested == "auto" && gpus > 0)) {
    if (gpus == 0)
      throw std::runtime_error(
#ifdef PGOLF_WITH_CUDA
          "DEVICE=cuda but no GPU is visible (check CUDA_VISIBLE_DEVICES and the driver)"
#else
          "DEVICE=cuda but this pgolf was built without the CUDA path (rebuild with -DPGOLF_CUDA=ON)"
#endif
      );
    if (local_rank >= gpus)
      throw std::runtime_error("local rank " + std::to_string(local_rank) + " has no GPU: only " + std::to_string(gpus) +
                               " visible (launch at most one process per GPU)");
#ifdef PGOLF_WITH_CUDA
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(local_rank));
#endif
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
  }
  if (requested == "auto") return c10::kCPU;
  throw std::invalid_argument("DEVICE must be auto, cpu or cuda, got '" + requested + "'");
}

std::string device_name(const c10::Device& device) {
#ifdef PGOLF_WITH_CUDA
  if (device.is_cuda()) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device.index() < 0 ? 0 : device.index()) == cudaSuccess) return prop.name;
    return "unknown GPU";
  }
#endif
  return device.str();
}

double ms_since_process_start() {
  // Field 22 of /proc/self/stat is the start time in clock ticks after boot;
  // /proc/uptime's first number is the seconds since boot. The command name
  // (field 2, in parentheses) may hold spaces, so fields count from its ')'.
  std::ifstream stat("/proc/self/stat"), up("/proc/uptime");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  double uptime_s = 0;
  up >> uptime_s;
  const auto close = text.rfind(')');
  if (close == std::string::npos || uptime_s <= 0) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
  }
  const double start_s = std::stod(field) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return (uptime_s - start_s) * 1000.0;
}

void synchronize(const c10::Device& device) {
#ifdef PGOLF_WITH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#else
  (void)device;
#endif
}

std::string peak_memory_report(const c10::Device& device) {
  std::ostringstream out;
#ifdef PGOLF_WITH_CUDA
  if (device.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    const auto all = static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    out << "peak memory allocated: " << stats.allocated_bytes[all].peak / (1 << 20)
        << " MiB reserved: " << stats.reserved_bytes[all].peak / (1 << 20) << " MiB";
    return out.str();
  }
#endif
  (void)device;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  out << "peak memory allocated: " << ru.ru_maxrss / 1024 << " MiB (process peak RSS, CPU)";
  return out.str();
}

std::string error_message(const std::exception& e) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&e)) return torch_error->what_without_backtrace();
  return e.what();
}

std::string runtime_info() {
  std::ostringstream out;
  out << "libtorch: " << TORCH_VERSION << "\n";
#ifdef PGOLF_WITH_CUDA
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  out << "cuda path: built (CUDA runtime " << runtime / 1000 << "." << (runtime % 1000) / 10 << ")\n";
#if PGOLF_HAS_CUDA_KERNELS
  out << "cuda kernels: built for compute capabilities " << cuda_kernel_architectures() << "\n";
#endif
#else
  out << "cuda path: not built\n";
#endif
  out << "cuda devices: " << cuda_device_count() << "\n";
  out << "cpu cores available: " << available_cores() << "\n";
  out << "torch threads: " << at::get_num_threads() << "\n";
  return out.str();
}

std::vector<std::string> ignored_cuda_switches(const RuntimeConfig& cfg, const c10::Device& device) {
  std::vector<std::string> notes;
  if (device.is_cuda()) return notes;
  auto note = [&](bool set, const std::string& key, const std::string& what) {
    std::string tag = key;  // the log's lower-case tag, e.g. fused_kernels
    std::transform(tag.begin(), tag.end(), tag.begin(), [](unsigned char c) { return std::tolower(c); });
    if (set) notes.push_back(tag + ": " + key + "=1 is ignored on " + device.str() + " (" + what + " run on CUDA only)");
  };
  note(cfg.fused_kernels, "FUSED_KERNELS", "the fused kernels");
  note(cfg.cuda_graphs, "CUDA_GRAPHS", "CUDA graphs");
  return notes;
}

}  // namespace pgolf
