#include "pgolf/app/provenance.h"

#include <torch/version.h>
#include <unistd.h>
#include <zlib.h>

#include <fstream>

#include "pgolf/export/code_archive.h"

#ifdef PGOLF_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace pgolf {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

// CRC-32 of every counted source file's path and minified bytes, in path
// order: the same for the same sources wherever and whenever they were built,
// and the same for a full tree and the tree unpacked from its code archive.
std::string sources_crc32() {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const auto& [path, bytes] : counted_sources()) {
    crc = crc32(crc, reinterpret_cast<const Bytef*>(path.data()), static_cast<uInt>(path.size()));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size()));
  }
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08lx", static_cast<unsigned long>(crc));
  return buf;
}

std::string cuda_version() {
#ifdef PGOLF_WITH_CUDA
  int v = 0;
  if (cudaRuntimeGetVersion(&v) != cudaSuccess) return "unknown";
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
#else
  return "none";
#endif
}

Fields version_fields() {
  return {{"pgolf", PGOLF_VERSION}, {"commit", build_commit()}, {"sources_crc32", sources_crc32()},
          {"libtorch", TORCH_VERSION}, {"cuda", cuda_version()}};
}

// The GPU's name, or the CPU's model from /proc/cpuinfo.
std::string device_name(const c10::Device& device) {
#ifdef PGOLF_WITH_CUDA
  cudaDeviceProp p{};
  if (device.is_cuda() && cudaGetDeviceProperties(&p, device.index() < 0 ? 0 : device.index()) == cudaSuccess) return p.name;
#endif
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

std::string version_text() {
  std::string out;
  for (const auto& [k, v] : version_fields()) out += (out.empty() ? k + " " : " " + k + ":") + v;
  return out;
}

Fields provenance(const c10::Device& device, int world_size, const std::string& launcher) {
  Fields out = version_fields();
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  out.insert(out.end(), {{"device", device.str()},
                         {"device_name", device_name(device)},
                         {"host", host},
                         {"world_size", std::to_string(world_size)},
                         {"launcher", launcher}});
  return out;
}

}  // namespace pgolf
