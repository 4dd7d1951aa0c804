// Fitting tests: a small model with Gaussian weights and quiet fitting runs.
#pragma once
#include <gtest/gtest.h>
#include <regex>
#include "helpers.h"
#include "pgolf/export/artifact.h"
#include "pgolf/export/fit.h"
#include "pgolf/core/io.h"

namespace pgolf::test {

struct Fixture {
  Config cfg;
  std::vector<NamedTensor> weights;
  ExportChoice start;
};

inline Fixture gaussian_model() {
  Fixture f;
  f.cfg = test::small_model(2, 128);
  f.cfg.model.vocab_size = 256;
  f.cfg.export_.quant_passthrough_numel = 4096;
  GPT m(f.cfg.model, {});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (const auto& p : m.parameters())
    f.weights.push_back({p.name, p.tensor.dim() == 2 ? at::normal(0.0, 0.1, p.tensor.sizes(), gen, at::kFloat)
                                                     : p.tensor.detach().clone()});
  f.start = {quant_options(f.cfg.export_, f.cfg.qat), 0.0};
  return f;
}

inline std::string pack(const std::string& payload) { return compress(payload, Codec::Zstd); }

inline std::uint64_t unfitted_bytes(const Fixture& f) {
  return pack(serialize_tensors(quantize_tensors(f.weights, f.start.quant))).size() + kArtifactHeaderBytes;
}

// fit_export with a log that prints nothing.
inline FitResult fit_quietly(const Fixture& f, const FitOptions& o) {
  TempDir dir;
  Config cfg = f.cfg;
  cfg.run.log_dir = dir.path();
  RunLog log(cfg, RunLog::Mode::Silent);
  return fit_export(f.weights, {}, f.start, o, Codec::Zstd, kArtifactHeaderBytes, log);
}

}  // namespace pgolf::test
