// Whether this build's fused-op kernels can run on a GPU: the CUDA runtime
// finds a kernel image for the device (SASS of its architecture, or PTX it can
// compile) or reports cudaErrorNoKernelImageForDevice. Asked when the model
// takes the fused ops (check_fused_kernels_run_on), so a GPU the binary has no
// kernels for stops the run at its start, naming both, instead of failing at
// the first launch.
#include <cuda_runtime.h>

#include <string>

#include "pgolf/kernels/fused.h"

namespace pgolf {
namespace {

// One kernel compiled with the same architecture flags as every other one
// here (CMakeLists.txt: TORCH_CUDA_ARCH_LIST): if it loads, they all do.
__global__ void probe() {}

}  // namespace

const char* cuda_kernel_architectures() { return PGOLF_CUDA_ARCH_LIST; }

std::string cuda_kernels_unavailable(int device_index) {
  cudaFuncAttributes attributes{};
  const cudaError_t e = cudaFuncGetAttributes(&attributes, probe);
  if (e == cudaSuccess) return "";
  cudaGetLastError();  // the error is reported here, not left for the next launch to find
  cudaDeviceProp prop{};
  const bool known = cudaGetDeviceProperties(&prop, device_index) == cudaSuccess;
  const std::string built = "this pgolf's CUDA kernels are built for compute capabilities " +
                            std::string(PGOLF_CUDA_ARCH_LIST) + " (+PTX: newer GPUs compile it when loading)";
  if (!known || (e != cudaErrorNoKernelImageForDevice && e != cudaErrorInvalidDeviceFunction))
    return "the CUDA runtime cannot load this pgolf's kernels on GPU " + std::to_string(device_index) + ": " +
           cudaGetErrorString(e) + " (" + built + ")";
  const std::string capability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  return built + ", and none of them runs on GPU " + std::to_string(device_index) + " (" + prop.name +
         ", compute capability " + capability + "): " + cudaGetErrorString(e) +
         ". Set FUSED_KERNELS=0, or rebuild pgolf with -DTORCH_CUDA_ARCH_LIST=\"" + capability + "\" (docs/GPU.md)";
}

}  // namespace pgolf
