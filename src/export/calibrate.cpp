#include "pgolf/export/calibrate.h"

#include <ATen/core/grad_mode.h>

#include <set>

#include "pgolf/data/data.h"

namespace pgolf {

std::map<std::string, at::Tensor> input_hessians(GPT& model, const std::vector<std::string>& files, std::int64_t tokens,
                                                 std::int64_t seq_len, std::int64_t batch_seqs,
                                                 const std::vector<std::string>& names) {
  at::NoGradGuard no_grad;
  const std::set<std::string> wanted(names.begin(), names.end());
  std::map<std::string, at::Tensor> sums;
  std::map<std::string, std::int64_t> rows;
  // Accumulates x^T x over the flattened input rows, in float32.
  model.set_input_observer([&](const std::string& name, const at::Tensor& x) {
    if (!wanted.count(name)) return;
    at::Tensor flat = x.reshape({-1, x.size(-1)}).to(at::kFloat);
    at::Tensor xtx = at::matmul(flat.t(), flat);
    auto it = sums.find(name);
    if (it == sums.end()) sums.emplace(name, xtx);
    else it->second.add_(xtx);
    rows[name] += flat.size(0);
  });
  TokenStream stream(files, model.config().vocab_size);
  const auto device = model.options().device;
  try {
    for (std::int64_t done = 0; done < tokens;) {
      const std::int64_t seqs = std::max<std::int64_t>(1, std::min(batch_seqs, (tokens - done) / seq_len));
      const std::vector<std::uint16_t> chunk = stream.take(static_cast<std::size_t>(seqs * seq_len));
      std::vector<std::int64_t> ids(chunk.begin(), chunk.end());
      at::Tensor idx = at::from_blob(ids.data(), {seqs, seq_len}, at::kLong).to(device, /*non_blocking=*/false, /*copy=*/true);
      model.logits(idx);
      done += seqs * seq_len;
    }
  } catch (...) {
    model.set_input_observer(nullptr);
    throw;
  }
  model.set_input_observer(nullptr);
  for (auto& [name, h] : sums) h.div_(static_cast<double>(rows[name]));
  return sums;
}

}  // namespace pgolf
