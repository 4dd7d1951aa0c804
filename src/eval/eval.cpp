#include "pgolf/eval/eval.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace pgolf {

double EvalSums::val_bpb() const { return nll / std::log(2.0) / bytes; }

EvalSums all_reduce(const EvalSums& local, Dist& dist, const at::Device& device, const std::string& what) {
  at::Tensor t = at::tensor({local.nll, local.tokens, local.bytes}, at::kDouble).to(device);
  dist.all_reduce_sum(t, "evaluation sums");
  t = t.cpu();
  const EvalSums e{t[0].item<double>(), t[1].item<double>(), t[2].item<double>()};
  if (!std::isfinite(e.val_loss()) || !std::isfinite(e.val_bpb())) {
    auto num = [](double v) {
      char b[32];
      std::snprintf(b, sizeof b, "%g", std::isnan(v) ? std::fabs(v) : v);  // "nan", never "-nan"
      return std::string(b);
    };
    throw std::runtime_error(what + ": val_loss:" + num(e.val_loss()) + " val_bpb:" + num(e.val_bpb()) + " is not finite (NLL sum " +
                             num(e.nll) + " over " + num(e.tokens) + " tokens and " + num(e.bytes) +
                             " bytes): the model's outputs are not finite: training diverged (see train_loss above; lower "
                             "the learning rates), or the weights file or artifact holds NaN or Inf");
  }
  return e;
}

std::vector<std::int32_t> lut_target_bytes(const std::vector<std::uint16_t>& val, const ByteLuts& luts) {
  std::vector<std::int32_t> bytes(val.size(), 0);
  for (std::size_t i = 1; i < val.size(); ++i) bytes[i] = static_cast<std::int32_t>(luts.token_bytes(val[i - 1], val[i]));
  return bytes;
}

TargetBytes target_bytes(const ValidationSplit& split, const std::string& tokenizer_path, std::int64_t vocab_size) {
  if (!split.bytes.empty()) {
    TargetBytes t{std::vector<std::int32_t>(split.bytes.begin(), split.bytes.end()), "sidecars"};
    t.bytes[0] = 0;
    return t;
  }
  const Tokenizer tok(tokenizer_path);
  return {lut_target_bytes(split.tokens, build_byte_luts(tok, static_cast<int>(vocab_size))), "tokenizer"};
}

at::Tensor to_tensor(const std::vector<std::uint16_t>& tokens) {
  at::Tensor t = at::empty({static_cast<std::int64_t>(tokens.size())}, at::kLong);
  std::copy(tokens.begin(), tokens.end(), t.data_ptr<std::int64_t>());
  return t;
}

at::Tensor to_tensor(const std::vector<std::int32_t>& bytes) {
  return at::tensor(at::ArrayRef<std::int32_t>(bytes), at::kInt);
}

EvalSums evaluate_standard(GPT& model, const at::Tensor& val, const at::Tensor& val_bytes, std::int64_t seq_len,
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
    bytes += val_bytes.narrow(0, s * seq_len + 1, (e - s) * seq_len).sum();
  }
  return {nll.item<double>(), static_cast<double>((last - first) * seq_len), static_cast<double>(bytes.item<std::int64_t>())};
}

std::int64_t sliding_window_count(std::int64_t targets, std::int64_t seq_len, std::int64_t stride) {
  if (targets <= seq_len) return 1;
  return 1 + (targets - seq_len + stride - 1) / stride;
}

EvalSums evaluate_sliding(GPT& model, const at::Tensor& val, const at::Tensor& val_bytes, std::int64_t seq_len,
                          std::int64_t stride, std::int64_t batch_seqs, int rank, int world_size,
                          const std::function<void(std::int64_t, std::int64_t)>& progress) {
  at::NoGradGuard no_grad;
  const at::Device device = model.options().device;
  const auto longs = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor tokens = val.to(device), token_bytes = val_bytes.to(device);
  const std::int64_t T = val.numel() - 1, L = seq_len;
  const std::int64_t windows = sliding_window_count(T, L, stride);
  const std::int64_t first = windows * rank / world_size, last = windows * (rank + 1) / world_size;
  const at::Tensor offsets = at::arange(L, longs).unsqueeze(0);  // [1, L]
  at::Tensor nll = at::zeros({}, longs.dtype(at::kDouble)), bytes = at::zeros({}, longs), count = at::zeros({}, longs);
  const std::int64_t batches = (last - first + batch_seqs - 1) / batch_seqs;
  for (std::int64_t b = 0, w0 = first; w0 < last; ++b, w0 += batch_seqs) {
    const std::int64_t w1 = std::min(last, w0 + batch_seqs);
    at::Tensor starts = at::arange(w0, w1, longs).mul_(stride).unsqueeze(1);  // ws per window
    at::Tensor pos = starts + offsets;                                        // input positions
    at::Tensor x = tokens.index({pos.clamp_max(T - 1)});
    at::Tensor next = (pos + 1).clamp_max(T);
    at::Tensor y = tokens.index({next});
    // Scored: offsets in [from, len) with from = 0 for window 0, else L - stride,
    // and len = min(L, T - ws) (the last window may be short; its tail is padding).
    at::Tensor from = at::where(starts == 0, at::zeros_like(starts), at::full_like(starts, L - stride));
    at::Tensor mask = (offsets >= from) & (pos < T);
    nll += model.token_nll(x, y).to(at::kDouble).masked_fill(~mask, 0).sum();
    bytes += token_bytes.index({next}).masked_fill(~mask, 0).sum();
    count += mask.sum();
    if (progress) progress(b + 1, batches);
  }
  return {nll.item<double>(), static_cast<double>(count.item<std::int64_t>()), static_cast<double>(bytes.item<std::int64_t>())};
}

double unigram_bpb(const std::vector<std::int64_t>& train_counts, const std::vector<std::uint16_t>& val,
                   const std::vector<std::int32_t>& val_bytes) {
  double total = 0;
  for (auto c : train_counts) total += static_cast<double>(c);
  const double denom = total + static_cast<double>(train_counts.size());
  double bits = 0, bytes = 0;
  for (std::size_t i = 1; i < val.size(); ++i) {
    bits -= std::log2((static_cast<double>(train_counts[val[i]]) + 1.0) / denom);
    bytes += static_cast<double>(val_bytes[i]);
  }
  return bits / bytes;
}

}  // namespace pgolf
