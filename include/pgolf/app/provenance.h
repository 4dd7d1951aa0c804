// What made a run: pgolf's version, the commit and checksum of its sources,
// LibTorch and CUDA, the devices, the host and the launch. `pgolf --version`
// prints it; train.log and metrics.jsonl open with it.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <c10/core/Device.h>

namespace pgolf {

// "pgolf 0.9.0 commit:<c> sources_crc32:<x> libtorch:2.11.0 cuda:13.0|none".
std::string version_text();

// version_text()'s fields and device (with its name), host, world size and
// launcher, as (name, value) in the order they print.
std::vector<std::pair<std::string, std::string>> provenance(const c10::Device& device, int world_size,
                                                            const std::string& launcher);

}  // namespace pgolf
