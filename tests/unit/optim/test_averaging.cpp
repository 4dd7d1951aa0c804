// SWA and EMA: the snapshot rules of each seed, the average they load, and
// training runs whose average is compared with snapshots recorded by shorter runs.
#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "helpers.h"
#include "pgolf/optim/averaging.h"
#include "pgolf/train/train.h"
#include "pgolf/core/io.h"
#include "pgolf/export/quant.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

TEST(Averaging, SwaIsTheArithmeticMean) {
  at::Tensor p = at::zeros({3});
  Swa swa;
  std::vector<at::Tensor> snaps = {at::tensor({1.0f, 2.0f, 3.0f}), at::tensor({3.0f, 2.0f, 1.0f}), at::tensor({2.0f, 5.0f, 8.0f})};
  for (const auto& s : snaps) {
    p.copy_(s);
    swa.add({p});
  }
  p.zero_();
  swa.apply({p});
  EXPECT_EQ(swa.count(), 3);
  EXPECT_TRUE(at::allclose(p, (snaps[0] + snaps[1] + snaps[2]) / 3.0));
}

// SWA_STEP_INDEX: after which steps each rule snapshots.
TEST(Averaging, SwaTimingRules) {
  const SwaTiming done = swa_timing(SwaStepIndex::Done), taken = swa_timing(SwaStepIndex::Taken);
  std::vector<std::int64_t> by_done, by_taken;
  for (std::int64_t k = 1; k <= 120; ++k) {
    if (done(k, 50)) by_done.push_back(k);
    if (taken(k, 50)) by_taken.push_back(k);
  }
  EXPECT_EQ(by_done, (std::vector<std::int64_t>{50, 100}));
  EXPECT_EQ(by_taken, (std::vector<std::int64_t>{1, 51, 101}));
}

// A 64-step run with snapshots every 4 once the multiplier of the step taken
// is below 0.5 (from the 55th step on); the parameter holds the count of
// steps done, so the average names the steps it holds.
TEST(Averaging, SwaOfA64StepRunAsEachSeed) {
  auto run = [](SwaTiming due, bool add_final) {
    at::Tensor p = at::zeros({1}, at::kDouble);
    Swa swa;
    for (std::int64_t k = 1; k <= 64; ++k) {
      p.fill_(static_cast<double>(k));
      if (k >= 55 && due(k, 4)) swa.add({p});
    }
    const bool averaged = swa.finish({p}, add_final);
    return std::make_tuple(averaged, swa.count(), p.item<double>());
  };
  // #76: after steps 57 and 61, then the final weights.
  EXPECT_EQ(run(swa_timing(SwaStepIndex::Taken), true), std::make_tuple(true, std::int64_t{3}, (57.0 + 61.0 + 64.0) / 3.0));
  // #219, #286: after steps 56, 60 and 64.
  EXPECT_EQ(run(swa_timing(SwaStepIndex::Done), false), std::make_tuple(true, std::int64_t{3}, (56.0 + 60.0 + 64.0) / 3.0));
  // A snapshot on the final step and the final weights added: counted twice.
  EXPECT_EQ(run(swa_timing(SwaStepIndex::Done), true), std::make_tuple(true, std::int64_t{4}, (56.0 + 60.0 + 64.0 + 64.0) / 4.0));
}

// Every seed averages only a sum of more than one snapshot; the final
// weights join only a sum already started.
TEST(Averaging, SwaKeepsTheFinalWeightsWithOneSnapshotOrNone) {
  at::Tensor p = at::full({2}, 7.0);
  Swa none;
  EXPECT_FALSE(none.finish({p}, true));
  EXPECT_EQ(none.count(), 0);
  EXPECT_TRUE(at::equal(p, at::full({2}, 7.0)));
  for (bool add_final : {false, true}) {
    Swa one;
    p.fill_(3.0);
    one.add({p});
    p.fill_(7.0);
    EXPECT_EQ(one.finish({p}, add_final), add_final);
    EXPECT_TRUE(at::equal(p, at::full({2}, add_final ? 5.0 : 7.0))) << add_final;
  }
}

TEST(Averaging, EmaFollowsRecurrence) {
  at::Tensor p = at::tensor({1.0f, -1.0f});
  Ema ema({p}, 0.9);
  at::Tensor want = p.clone();
  for (float v : {2.0f, 4.0f, -3.0f}) {
    p.fill_(v);
    ema.update({p});
    want = 0.9 * want + 0.1 * p;
  }
  EXPECT_TRUE(at::allclose(ema.state()[0], want, 1e-6, 1e-7));
  ema.apply({p});
  EXPECT_TRUE(at::allclose(p, want, 1e-6, 1e-7));
}

