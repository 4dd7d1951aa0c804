// Score-first test-time training: documents, adapters, and the evaluation
// against a slow window-by-window computation; causality, coverage, budget,
// global phases and the split over two ranks.
#include <gtest/gtest.h>

#include "helpers.h"
#include "ttt_model.h"
#include "pgolf/data/data.h"
#include "pgolf/eval/lora.h"
#include "pgolf/eval/ttt.h"

using namespace pgolf;

using test::float64_model;
using test::kLengths;
using test::make_stream;
using test::run_ttt;
using test::simple_bytes;
using test::slow_target_nll;
using test::small_options;
using test::tiny;

TEST(TttDocuments, SplitAtEveryBosCoversEveryTargetOnce) {
  const at::Tensor val = make_stream(kLengths, 1);
  const auto docs = split_documents(val, kBosId);
  ASSERT_EQ(docs.size(), kLengths.size());
  std::int64_t next = 0;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(docs[i].start, next);
    EXPECT_EQ(docs[i].targets, kLengths[i]);
    EXPECT_EQ(val[docs[i].start].item<std::int64_t>(), kBosId);
    EXPECT_EQ(val[docs[i].start + docs[i].targets].item<std::int64_t>(), kBosId) << "a document ends with the next BOS";
    next += docs[i].targets;
  }
  EXPECT_EQ(next, val.numel() - 1);
  // A stream that starts mid-document and ends without a BOS.
  const at::Tensor cut = val.narrow(0, 3, 40);
  const auto parts = split_documents(cut, kBosId);
  std::int64_t sum = 0;
  for (const auto& d : parts) sum += d.targets;
  EXPECT_EQ(parts.front().start, 0);
  EXPECT_EQ(sum, cut.numel() - 1);
}

TEST(TttDocuments, BatchesLongestFirst) {
  const auto docs = split_documents(make_stream(kLengths, 1), kBosId);
  const auto batches = ttt_batches(docs, 3);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[2].size(), 2u);
  std::int64_t prev = 1 << 30;
  for (const auto& b : batches)
    for (std::size_t i : b) {
      EXPECT_LE(docs[i].targets, prev);
      prev = docs[i].targets;
    }
  EXPECT_EQ(docs[batches[0][0]].targets, 55);
}


TEST(Ttt, AtLearningRateZeroEqualsThePlainEvaluationOfTheSameWindows) {
  const Config c = tiny();
  auto m = float64_model(c, 5);
  const at::Tensor val = make_stream(kLengths, 2);
  TttOptions o = small_options();
  o.ttt.ttt_lr = 0;
  const TttScores s = run_ttt(*m, val, o);
  double nll = 0, bytes = 0;
  const at::Tensor b = simple_bytes(val);
  for (const auto& d : split_documents(val, kBosId))
    for (std::int64_t j = 0; j < d.targets; ++j) {
      const double want = slow_target_nll(*m, val, d, j, o.ttt.ttt_chunk, o.ttt.ttt_context);
      EXPECT_NEAR(s.target_nll[d.start + j + 1].item<double>(), want, 1e-10) << "doc at " << d.start << " target " << j;
      nll += want;
      bytes += b[d.start + j + 1].item<int>();
    }
  EXPECT_NEAR(s.sums.nll, nll, 1e-9);
  EXPECT_EQ(s.sums.bytes, bytes);
  EXPECT_EQ(s.adapted_docs, static_cast<std::int64_t>(kLengths.size()));
}

TEST(Ttt, EveryTargetIsScoredExactlyOnce) {
  const Config c = tiny();
  auto m = float64_model(c, 6);
  const at::Tensor val = make_stream(kLengths, 3);
  TttOptions o = small_options();
  o.ttt.ttt_global_after = {3};
  const TttScores s = run_ttt(*m, val, o);
  EXPECT_EQ(s.times_scored[0].item<int>(), 0);
  EXPECT_TRUE(at::equal(s.times_scored.narrow(0, 1, val.numel() - 1), at::ones({val.numel() - 1}, at::kInt)));
  EXPECT_EQ(s.sums.tokens, static_cast<double>(val.numel() - 1));
}

// Changing a token of a document changes no score of a target before it (in
// that document or any other), and does change the scores after it.
TEST(Ttt, IsCausal) {
  const Config c = tiny();
  auto m = float64_model(c, 7);
  const at::Tensor val = make_stream(kLengths, 4);
  const TttOptions o = small_options();
  const Document d = split_documents(val, kBosId)[2];  // 55 targets: 11 chunks, sliding windows
  for (std::int64_t q : {std::int64_t{7}, std::int64_t{23}, std::int64_t{50}}) {
    at::Tensor changed = val.clone();
    changed[d.start + q] = val[d.start + q].item<std::int64_t>() == 2 ? 3 : 2;
    auto base = float64_model(c, 7), other = float64_model(c, 7);
    const TttScores a = run_ttt(*base, val, o), b = run_ttt(*other, changed, o);
    const at::Tensor before = at::cat({a.target_nll.narrow(0, 0, d.start + q), a.target_nll.narrow(0, d.start + d.targets + 1, val.numel() - d.start - d.targets - 1)});
    const at::Tensor before2 = at::cat({b.target_nll.narrow(0, 0, d.start + q), b.target_nll.narrow(0, d.start + d.targets + 1, val.numel() - d.start - d.targets - 1)});
    EXPECT_TRUE(at::equal(before, before2)) << "a token at " << q << " changed an earlier score";
    const at::Tensor after = a.target_nll.narrow(0, d.start + q + 1, d.targets - q);
    const at::Tensor after2 = b.target_nll.narrow(0, d.start + q + 1, d.targets - q);
    EXPECT_FALSE(at::equal(after, after2)) << "the change at " << q << " must reach later targets";
  }
}

// A document that repeats one pattern: adapting on its scored chunks makes
// the later repeats cheaper than the base model finds them.
TEST(Ttt, AdaptingLowersTheLossOfARepetitiveDocument) {
  const Config c = tiny();
  std::vector<std::int64_t> toks = {kBosId};
  for (int rep = 0; rep < 8; ++rep)
    for (std::int64_t t : {2, 5, 3, 7, 7, 4}) toks.push_back(t);
  toks.push_back(kBosId);
  const at::Tensor val = at::tensor(toks, at::kLong);
  TttOptions o = small_options();
  o.ttt.ttt_lr = 0.05;
  auto a = float64_model(c, 8), b = float64_model(c, 8);
  const TttScores adapted = run_ttt(*a, val, o);
  o.ttt.ttt_lr = 0;
  const TttScores plain = run_ttt(*b, val, o);
  const std::int64_t tail = 20;  // the last targets, after several steps
  const double la = adapted.target_nll.narrow(0, val.numel() - tail, tail).sum().item<double>();
  const double lp = plain.target_nll.narrow(0, val.numel() - tail, tail).sum().item<double>();
  EXPECT_LT(la, 0.9 * lp) << "adapted " << la << " plain " << lp;  // measured: 41.2 against 49.3
  // The first chunk is scored before any step.
  EXPECT_TRUE(at::equal(adapted.target_nll.narrow(0, 1, o.ttt.ttt_chunk), plain.target_nll.narrow(0, 1, o.ttt.ttt_chunk)));
}

// Past the budget the rest is scored by the base model: a budget of ~0 lets
// only the first round adapt.
TEST(Ttt, PastTheBudgetTheRestIsScoredUnadapted) {
  const Config c = tiny();
  const at::Tensor val = make_stream(kLengths, 5);
  TttOptions o = small_options();
  o.budget_seconds = 1e-9;
  auto a = float64_model(c, 9), b = float64_model(c, 9);
  const TttScores s = run_ttt(*a, val, o);
  EXPECT_EQ(s.adapted_docs, 3);
  EXPECT_EQ(s.unadapted_docs, 5);
  o.budget_seconds = 0;
  o.ttt.ttt_lr = 0;
  const TttScores plain = run_ttt(*b, val, o);
  const auto docs = split_documents(val, kBosId);
  const auto batches = ttt_batches(docs, o.ttt.ttt_batch_docs);
  for (std::size_t j = 1; j < batches.size(); ++j)
    for (std::size_t i : batches[j]) {
      const Document& d = docs[i];
      EXPECT_TRUE(at::equal(s.target_nll.narrow(0, d.start + 1, d.targets), plain.target_nll.narrow(0, d.start + 1, d.targets)));
    }
}

// A global phase after the first round changes the model for the later
// rounds only.
TEST(Ttt, GlobalPhaseTrainsOnlyAfterItsDocumentsWereScored) {
  const Config c = tiny();
  const at::Tensor val = make_stream(kLengths, 6);
  TttOptions o = small_options();
  auto a = float64_model(c, 10), b = float64_model(c, 10);
  const TttScores none = run_ttt(*a, val, o);
  o.ttt.ttt_global_after = {3};
  o.ttt.ttt_global_lr = 0.05;
  const TttScores phased = run_ttt(*b, val, o);
  EXPECT_EQ(phased.global_phases, 1);
  EXPECT_FALSE(at::equal(a->param("blocks.0.attn.c_q.weight"), b->param("blocks.0.attn.c_q.weight")));
  EXPECT_TRUE(b->param("blocks.0.attn.c_q.weight").requires_grad()) << "the weights take gradients again afterwards";
  const auto docs = split_documents(val, kBosId);
  const auto batches = ttt_batches(docs, o.ttt.ttt_batch_docs);
  for (std::size_t j = 0; j < batches.size(); ++j)
    for (std::size_t i : batches[j]) {
      const Document& d = docs[i];
      const bool same = at::equal(none.target_nll.narrow(0, d.start + 1, d.targets), phased.target_nll.narrow(0, d.start + 1, d.targets));
      EXPECT_EQ(same, j == 0) << "batch " << j;
    }
}

// Two ranks over Gloo split the batches; together they score what one process
// scores (each batch's arithmetic is the same wherever it runs), and with a
// global phase both end with the same weights.
TEST(Ttt, TwoRanksTogetherScoreWhatOneProcessScores) {
  const Config c = tiny();
  const at::Tensor val = make_stream(kLengths, 7);
  TttOptions o = small_options();
  auto one = float64_model(c, 11);
  const TttScores whole = run_ttt(*one, val, o);
  o.ttt.ttt_global_after = {5};
  std::vector<TttScores> parts(2);
  std::vector<std::unique_ptr<GPT>> models(2);
  test::run_two_ranks(test::test_port(11), [&](Dist& dist, int rank) {
    models[rank] = float64_model(c, 11);
    parts[rank] = evaluate_ttt(*models[rank], val, simple_bytes(val), o, dist);
  });
  EXPECT_TRUE(at::equal(parts[0].times_scored + parts[1].times_scored, whole.times_scored));
  EXPECT_EQ(parts[0].global_phases, 1);
  EXPECT_EQ(parts[1].global_phases, 1);
  for (const auto& p : models[0]->parameters()) EXPECT_TRUE(at::equal(p.tensor, models[1]->param(p.name))) << p.name;
  // Round 0 (batches 0 and 1, before the phase) matches the single process.
  const auto docs = split_documents(val, kBosId);
  const auto batches = ttt_batches(docs, o.ttt.ttt_batch_docs);
  for (std::size_t j = 0; j < 2; ++j)
    for (std::size_t i : batches[j]) {
      const Document& d = docs[i];
      const at::Tensor got = parts[j].target_nll.narrow(0, d.start + 1, d.targets);
      EXPECT_TRUE(at::allclose(got, whole.target_nll.narrow(0, d.start + 1, d.targets), 0, 1e-12)) << "batch " << j;
    }
}
