// Process runtime: torch thread count and the compute device.
#pragma once
#include <c10/core/Device.h>

#include <chrono>
#include <exception>
#include <string>
#include <vector>

namespace pgolf {

struct RuntimeConfig;

// Cores this process may run on (its CPU affinity mask), at least 1.
int available_cores();

// Sets torch's intra-op threads: `num_threads` if positive, else available_cores().
// Returns the count in effect.
int init_threads(long num_threads);

// Resolves DEVICE: "cpu", "cuda", or "auto" (cuda when this build has the CUDA
// path and a GPU is visible). Asking for cuda where it is not there is an error.
// A CUDA device is the GPU of index `local_rank`, made the current one.
c10::Device select_device(const std::string& requested, int local_rank = 0);

// The GPU's name (e.g. "NVIDIA H100 80GB HBM3"), or "cpu".
std::string device_name(const c10::Device& device);

// Milliseconds since this process started (from /proc: 10 ms resolution).
double ms_since_process_start();

// Waits for all queued work on `device` (no-op on CPU).
void synchronize(const c10::Device& device);

// "peak memory allocated: X MiB reserved: Y MiB" on CUDA; the process's peak
// resident set on CPU.
std::string peak_memory_report(const c10::Device& device);

// Milliseconds elapsed since `t` on the steady clock.
inline double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// An exception's message for a person: LibTorch's errors (c10::Error)
// without the C++ stack trace they carry, which names no file or fix.
std::string error_message(const std::exception& e);

// One log note for each CUDA-only switch (FUSED_KERNELS, CUDA_GRAPHS) that
// is set but ignored because `device` is not CUDA; none otherwise.
std::vector<std::string> ignored_cuda_switches(const RuntimeConfig& cfg, const c10::Device& device);

// Human-readable build and device facts for `pgolf info`.
std::string runtime_info();

}  // namespace pgolf
