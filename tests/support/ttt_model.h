// Test-time training tests: a tiny float64 model and token streams of documents.
#pragma once
#include <gtest/gtest.h>
#include "helpers.h"
#include "pgolf/data/data.h"
#include "pgolf/eval/lora.h"
#include "pgolf/eval/ttt.h"

namespace pgolf::test {

constexpr std::int64_t kVocab = 8;

// Documents of these target counts, each a BOS then random non-BOS tokens;
// the stream ends with a BOS so the last document has its closing target.
inline at::Tensor make_stream(const std::vector<std::int64_t>& lengths, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<at::Tensor> parts;
  for (std::int64_t n : lengths) {
    parts.push_back(at::full({1}, kBosId, at::kLong));
    parts.push_back(at::randint(2, kVocab, {n - 1}, gen, at::kLong));
  }
  parts.push_back(at::full({1}, kBosId, at::kLong));
  return at::cat(parts);
}

inline at::Tensor simple_bytes(const at::Tensor& val) {
  at::Tensor b = (val % 3 + 1).to(at::kInt);
  b[0] = 0;
  return b;
}

inline Config tiny() {
  Config c = test::small_model(2, 16);
  c.model.vocab_size = kVocab;
  c.model.bigram_vocab_size = 8;
  c.model.bigram_dim = 4;
  c.train.train_seq_len = 16;
  c.train.train_batch_tokens = 128;
  c.eval.eval_stride = 8;
  return c;
}

inline std::unique_ptr<GPT> float64_model(const Config& c, std::uint64_t seed) {
  auto m = std::make_unique<GPT>(c.model, ModelOptions{at::kCPU, at::kDouble, at::kDouble});
  test::randomise(*m, seed);
  return m;
}

inline TttOptions small_options() {
  TttOptions o;
  o.ttt.ttt_targets = TttConfig{}.ttt_targets;
  o.ttt.ttt_rank = 3;
  o.ttt.ttt_alpha = 6;
  o.ttt.ttt_chunk = 5;
  o.ttt.ttt_context = 12;  // shorter than the long documents: windows slide inside them
  o.ttt.ttt_batch_docs = 3;
  o.ttt.ttt_lr = 0.05;
  o.global_seq_len = 16;
  o.ttt.ttt_global_batch_seqs = 2;
  return o;
}

inline const std::vector<std::int64_t> kLengths = {30, 7, 55, 12, 1, 20, 41, 5};

inline TttScores run_ttt(GPT& m, const at::Tensor& val, const TttOptions& o) {
  Dist single;
  return evaluate_ttt(m, val, simple_bytes(val), o, single);
}

// The NLL of target j of a document, by its own window: chunk k = j / C ends
// at e = min((k+1)C, n), the window is the document's inputs [max(0, e - W), e).
inline double slow_target_nll(GPT& m, const at::Tensor& val, const Document& d, std::int64_t j, std::int64_t C, std::int64_t W) {
  const std::int64_t e = std::min((j / C + 1) * C, d.targets), s = std::max<std::int64_t>(0, e - W);
  const at::Tensor x = val.narrow(0, d.start + s, e - s).unsqueeze(0), y = val.narrow(0, d.start + s + 1, e - s).unsqueeze(0);
  at::NoGradGuard no_grad;
  return m.token_nll(x, y)[0][j - s].item<double>();
}

}  // namespace pgolf::test
