// The optional components (cmake/components.cmake): test-time training,
// GPTQ, LQER, CUDA graphs, the fused ops' CUDA kernels, checkpoints, and the
// minifier, which the counted code never holds. A configuration that does not use one leaves its sources out of
// its counted code (export/code_archive.h), and a pgolf built from that code
// has kHas<Name> false: the code reaches a component only under
// `if constexpr (kHas<Name>)`, and validate_config() refuses a configuration
// that needs an absent one before any work, naming the keys.
#pragma once
#include <string>
#include <vector>

#include "pgolf/config/config.h"

namespace pgolf {

constexpr bool kHasTtt = PGOLF_HAS_TTT;
constexpr bool kHasGptq = PGOLF_HAS_GPTQ;
constexpr bool kHasLqer = PGOLF_HAS_LQER;
constexpr bool kHasCudaGraphs = PGOLF_HAS_CUDA_GRAPHS;
// The fused ops' CUDA kernels; src/kernels/fused_detail.h launches them only
// where this and the CUDA path both hold (PGOLF_CUDA_KERNELS).
constexpr bool kHasCudaKernels = PGOLF_HAS_CUDA_KERNELS;
constexpr bool kHasCheckpoints = PGOLF_HAS_CHECKPOINTS;
// The minifier (export/minify.h): only the full tree has it; the counted
// tree's files are minified already (minifying is idempotent).
constexpr bool kHasMinifier = PGOLF_HAS_MINIFIER;

struct Component {
  const char* name;     // as in cmake/components.cmake
  const char* keys;     // what turns it on, for messages
  bool present;         // its sources are in this build
  bool (*used)(const Config& cfg);
};
const std::vector<Component>& components();
const Component* find_component(const std::string& name);  // nullptr for unknown names

// Throws, naming the keys, when `cfg` uses a component this build lacks.
void require_components(const Config& cfg);

// What an absent component's call site throws when it is reached anyway
// (e.g. `pgolf eval` of an artifact holding LQER corrections).
[[noreturn]] void missing_component(const std::string& name);

}  // namespace pgolf
