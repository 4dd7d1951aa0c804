// Calibration Hessians against an independent computation, and GPTQ on a small trained model.
#include <gtest/gtest.h>

#include <ATen/core/grad_mode.h>

#include "helpers.h"
#include "pgolf/export/calibrate.h"
#include "pgolf/data/data.h"
#include "pgolf/core/io.h"
#include "pgolf/model/layers.h"
#include "pgolf/train/train.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

namespace {

std::vector<std::string> train_files(const Config& c) { return shard_files(train_pattern(c.run.data_path)); }

}  // namespace

TEST(Calibrate, HessiansAreMeanOuterProductsOfTheInputs) {
  TempDir dir;
  Config c = test::tiny_run(dir, 1);
  GPT m(c.model, {});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  m.param("bigram.embed.weight").detach().copy_(at::normal(0.0, 1.0, m.param("bigram.embed.weight").sizes(), gen, at::kFloat));
  const std::int64_t T = c.train.train_seq_len, seqs = 5, tokens = seqs * T;
  auto h = input_hessians(m, train_files(c), tokens, T, 2, {"bigram.proj.weight", "tok_emb.weight", "blocks.0.mlp.fc.weight"});
  ASSERT_EQ(h.size(), 3u);
  // bigram.proj's input is the bigram table row of each position's bucket.
  TokenStream stream(train_files(c), c.model.vocab_size);
  const auto taken = stream.take(static_cast<std::size_t>(tokens));
  std::vector<std::int64_t> ids(taken.begin(), taken.end());
  at::Tensor idx = at::from_blob(ids.data(), {seqs, T}, at::kLong).clone();
  at::Tensor x = m.param("bigram.embed.weight").detach().index_select(0, bigram_buckets(idx, c.model.bigram_vocab_size).flatten());
  at::Tensor want = at::matmul(x.t().to(at::kDouble), x.to(at::kDouble)) / static_cast<double>(tokens);
  EXPECT_TRUE(at::allclose(h.at("bigram.proj.weight").to(at::kDouble), want, 1e-5, 1e-6));
  // The head's input is RMS-normalised: the trace of its Hessian is the mean squared norm, = MODEL_DIM.
  EXPECT_NEAR(h.at("tok_emb.weight").trace().item<double>(), static_cast<double>(c.model.model_dim), 1e-3 * c.model.model_dim);
  EXPECT_EQ(h.at("blocks.0.mlp.fc.weight").sizes(), (std::vector<std::int64_t>{c.model.model_dim, c.model.model_dim}));
}

// ||(W - W') X^T||_F^2 / n = trace((W - W') H (W - W')^T) on a trained model's MLP input.
TEST(Calibrate, GptqLowersTheOutputErrorOfATrainedModel) {
  TempDir dir;
  Config c = test::tiny_run(dir, 40);
  {
    RunLog log(c);
    train(c, log);
  }
  GPT m(c.model, {});
  load_weights(m, dir.file("run/model.safetensors"));
  const std::string name = "blocks.1.mlp.fc.weight";
  const at::Tensor H = input_hessians(m, train_files(c), 64 * c.train.train_seq_len, c.train.train_seq_len, 8, {name}).at(name);
  const at::Tensor W = m.param(name).detach();
  auto output_error = [&](const RowQuantized& r) {
    at::Tensor d = (W - dequantize_rows(r)).to(at::kDouble);
    return at::matmul(at::matmul(d, H.to(at::kDouble)), d.t()).trace().item<double>();
  };
  for (int bits : {4, 5}) {
    const RowQuantizer rq{bits};
    const double plain = output_error(quantize_rows(W, rq)), gptq = output_error(gptq_quantize(W, H, rq));
    std::cout << "[ gptq ] trained " << name << " int" << bits << ": output error plain " << plain << ", GPTQ " << gptq
              << "\n";
    EXPECT_LT(gptq, plain * 0.95) << bits;
  }
}

