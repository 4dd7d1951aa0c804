#include "pgolf/config/components.h"

#include <stdexcept>

namespace pgolf {

const std::vector<Component>& components() {
  static const std::vector<Component> list = {
      {"TTT", "TTT_ENABLED=1", kHasTtt, [](const Config& c) { return c.ttt.ttt_enabled; }},
      {"GPTQ", "a QUANT_* plan with gptq", kHasGptq, [](const Config& c) { return uses_gptq(c.export_); }},
      {"LQER", "LQER_TENSORS > 0", kHasLqer, [](const Config& c) { return c.export_.lqer_tensors > 0; }},
      {"CUDA_GRAPHS", "CUDA_GRAPHS=1", kHasCudaGraphs, [](const Config& c) { return c.runtime.cuda_graphs; }},
      {"CUDA_KERNELS", "FUSED_KERNELS=1", kHasCudaKernels, [](const Config& c) { return c.runtime.fused_kernels; }},
      {"CHECKPOINTS", "CHECKPOINT_EVERY or CHECKPOINT_MINUTES", kHasCheckpoints,
       [](const Config& c) { return c.train.checkpoint_every > 0 || c.train.checkpoint_minutes > 0; }},
      {"MINIFIER", "", kHasMinifier, [](const Config&) { return false; }},
  };
  return list;
}

const Component* find_component(const std::string& name) {
  for (const Component& c : components())
    if (name == c.name) return &c;
  return nullptr;
}

void require_components(const Config& cfg) {
  for (const Component& c : components())
    if (c.used(cfg) && !c.present)
      throw ConfigError(std::string(c.keys) + " needs " + c.name + ", which this pgolf was built without: it is the counted " +
                        "code (train_gpt.py) of a configuration that does not use it; build pgolf from its repository");
}

void missing_component(const std::string& name) {
  throw std::runtime_error(name + " is not in this pgolf: it was built from the counted code (train_gpt.py) of a "
                           "configuration that does not use it; build pgolf from its repository");
}

}  // namespace pgolf
