#include "pgolf/eval.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

namespace pgolf {

double EvalSums::val_bpb() const { return nll / std::log(2.0) / bytes; }

DeviceLuts::DeviceLuts(const ByteLuts& luts, at::Device device) {
  const auto n = static_cast<std::int64_t>(luts.base_bytes.size());
  std::vector<std::int64_t> base(luts.base_bytes.begin(), luts.base_bytes.end());
  std::vector<std::uint8_t> lead(luts.has_leading_space.begin(), luts.has_leading_space.end());
  std::vector<std::uint8_t> bound(luts.is_boundary.begin(), luts.is_boundary.end());
  base_bytes = at::tensor(base, at::kLong).to(device);
  has_leading_space = at::from_blob(lead.data(), {n}, at::kByte).to(at::kBool).to(device);
  is_boundary = at::from_blob(bound.data(), {n}, at::kByte).to(at::kBool).to(device);
}

at::Tensor DeviceLuts::bytes(const at::Tensor& prev, const at::Tensor& target) const {
  return base_bytes.index({target}) + (has_leading_space.index({target}) & ~is_boundary.index({prev})).to(at::kLong);
}

at::Tensor to_tensor(const std::vector<std::uint16_t>& tokens) {
  std::vector<std::int64_t> wide(tokens.begin(), tokens.end());
  return at::tensor(wide, at::kLong);
}

EvalSums evaluate_standard(GPT& model, const at::Tensor& val, const DeviceLuts& luts, std::int64_t seq_len,
                           std::int64_t batch_seqs, int rank, int world_size) {
  at::NoGradGuard no_grad;
  const at::Device device = model.options().device;
  const std::int64_t total = (val.numel() - 1) / seq_len;
  const std::int64_t first = total * rank / world_size, last = total * (rank + 1) / world_size;
  at::Tensor nll = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
  at::Tensor bytes = at::zeros({}, at::TensorOptions().dtype(at::kLong).device(device));
  for (std::int64_t s = first; s < last; s += batch_seqs) {
    const std::int64_t e = std::min(last, s + batch_seqs);
    at::Tensor chunk = val.narrow(0, s * seq_len, (e - s) * seq_len + 1).to(device);
    at::Tensor x = chunk.narrow(0, 0, (e - s) * seq_len).view({-1, seq_len});
    at::Tensor y = chunk.narrow(0, 1, (e - s) * seq_len).view({-1, seq_len});
    nll += model.token_nll(x, y).to(at::kDouble).sum();
    bytes += luts.bytes(x, y).sum();
  }
  return {nll.item<double>(), static_cast<double>((last - first) * seq_len), static_cast<double>(bytes.item<std::int64_t>())};
}

double unigram_bpb(const std::vector<std::int64_t>& train_counts, const std::vector<std::uint16_t>& val,
                   const ByteLuts& luts) {
  double total = 0;
  for (auto c : train_counts) total += static_cast<double>(c);
  const double denom = total + static_cast<double>(train_counts.size());
  double bits = 0, bytes = 0;
  for (std::size_t i = 1; i < val.size(); ++i) {
    bits -= std::log2((static_cast<double>(train_counts[val[i]]) + 1.0) / denom);
    bytes += static_cast<double>(luts.token_bytes(val[i - 1], val[i]));
  }
  return bits / bytes;
}

}  // namespace pgolf
