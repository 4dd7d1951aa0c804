#include "pgolf/eval/lora.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace pgolf {

namespace {

// (in, out) of a site's map.
std::pair<std::int64_t, std::int64_t> site_shape(const ModelConfig& c, AdapterSite site) {
  const std::int64_t D = c.model_dim, kv = c.num_kv_heads * c.head_dim();
  switch (site) {
    case AdapterSite::K:
    case AdapterSite::V: return {D, kv};
    case AdapterSite::Head: return {D, c.vocab_size};
    default: return {D, D};
  }
}

}  // namespace

BatchedLora::BatchedLora(const GPT& model, const std::vector<AdapterSite>& sites, std::int64_t rank, double alpha,
                         std::int64_t docs, std::uint64_t seed)
    : scale_(alpha / static_cast<double>(rank)) {
  const ModelConfig& c = model.config();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto device = at::TensorOptions().dtype(model.options().param_dtype).device(model.options().device);
  for (AdapterSite site : sites) {
    const auto [in, out] = site_shape(c, site);
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    for (std::int64_t layer = site == AdapterSite::Head ? -1 : 0; layer < (site == AdapterSite::Head ? 0 : c.num_layers);
         ++layer) {
      Pair p{at::empty({docs, rank, in}, at::kDouble).uniform_(-bound, bound, gen).to(device).requires_grad_(true),
             at::zeros({docs, out, rank}, device).requires_grad_(true)};
      params_.push_back(p.a);
      params_.push_back(p.b);
      pairs_[{site, layer}] = p;
    }
  }
}

at::Tensor BatchedLora::delta(AdapterSite site, std::int64_t layer, const at::Tensor& x) const {
  auto it = pairs_.find({site, layer});
  if (it == pairs_.end()) return {};
  const std::int64_t m = x.size(0);
  const auto dt = x.scalar_type();
  const at::Tensor a = it->second.a.narrow(0, 0, m).to(dt), b = it->second.b.narrow(0, 0, m).to(dt);
  return at::matmul(at::matmul(x, a.transpose(1, 2)), b.transpose(1, 2)) * scale_;
}

GPT::Adapter BatchedLora::adapter() const {
  return [this](AdapterSite site, std::int64_t layer, const at::Tensor& x) { return delta(site, layer, x); };
}

}  // namespace pgolf
