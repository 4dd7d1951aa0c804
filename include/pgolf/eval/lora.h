// Low-rank adapters for score-first test-time training (ttt.h): one pair per
// document and adapted site, A [r, in] and B [out, r]; the site's output gains
//   delta(x) = (alpha / r) * (x A^T) B^T,
// with A ~ U(-1/sqrt(in), 1/sqrt(in)) and B = 0, so delta = 0 at init.
// A batch of n documents keeps the pairs stacked, A [n, r, in] and
// B [n, out, r]; a forward pass over the first m <= n documents (rows 0..m-1
// of the batch) uses the first m of each.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/model/model.h"

namespace pgolf {

class BatchedLora {
 public:
  // Pairs for `docs` documents at every site of `sites` (per physical layer
  // of `model`, and the head), on the model's device in its parameter dtype.
  // The A factors are drawn (in float64) from a CPU generator seeded with `seed`.
  BatchedLora(const GPT& model, const std::vector<AdapterSite>& sites, std::int64_t rank, double alpha,
              std::int64_t docs, std::uint64_t seed);
  // delta(x) for `site` of `layer` (-1: the head) on x [m, T, in], m <= docs;
  // undefined where that site is not adapted.
  at::Tensor delta(AdapterSite site, std::int64_t layer, const at::Tensor& x) const;
  // Every factor (leaf tensors with requires_grad), in a fixed order.
  const std::vector<at::Tensor>& parameters() const { return params_; }
  // The adapter to hand to GPT::set_adapter (valid while this object lives).
  GPT::Adapter adapter() const;

 private:
  struct Pair {
    at::Tensor a, b;
  };
  std::map<std::pair<AdapterSite, std::int64_t>, Pair> pairs_;
  std::vector<at::Tensor> params_;
  double scale_;
};

}  // namespace pgolf
