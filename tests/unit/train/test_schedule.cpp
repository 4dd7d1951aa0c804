// The learning-rate schedule, the QAT and loop switches and the agreed clock,
// against hand computations and a recorded timeline.
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

namespace {

Config schedule_config(double cap_seconds) {
  Config c;
  c.schedule.iterations = 1000;
  c.schedule.warmdown_iters = 200;
  c.schedule.max_wallclock_seconds = cap_seconds;
  return c;
}

}  // namespace

TEST(Schedule, IterationWarmdown) {
  Config c = schedule_config(0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 0, 0, 0), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 799, 0, 0), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 800, 0, 0), 1.0);  // (1000-800)/200
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 900, 0, 0), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 999, 0, 0), 0.005);
  c.schedule.warmdown_iters = 0;
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 999, 0, 0), 1.0);
}

// The 1.0611 record's schedule: 1 for the first 15% of the run, then linear
// to 0 at its end, floored at MIN_LR = 0.1 (in time under a cap, else in steps).
TEST(Schedule, HoldThenDecayWithAFloor) {
  Config c = schedule_config(100);  // 100 s cap
  c.schedule.lr_schedule = LrSchedule::HoldDecay;
  c.schedule.lr_hold_frac = 0.15;
  c.schedule.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 0, 0, 50), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 100, 10e3, 50), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 150, 15e3, 50), 1.0);           // (1 - 0.15) / 0.85
  EXPECT_NEAR(lr_multiplier(c.schedule, 575, 57.5e3, 50), 0.5, 1e-12);      // (1 - 0.575) / 0.85
  EXPECT_NEAR(lr_multiplier(c.schedule, 830, 83e3, 50), 0.2, 1e-12);        // (1 - 0.83) / 0.85
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 950, 95e3, 50), 0.1);          // 0.0588 floored
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 1100, 110e3, 50), 0.1);
  c.schedule.max_wallclock_seconds = 0;  // in steps of ITERATIONS = 1000
  EXPECT_NEAR(lr_multiplier(c.schedule, 575, 1e9, 50), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 100, 0, 50), 1.0);
  c.schedule.min_lr = 0;
  EXPECT_NEAR(lr_multiplier(c.schedule, 1000, 0, 50), 0.0, 1e-12);
  // MIN_LR floors the seeds' warm-down too.
  Config w = schedule_config(0);
  w.schedule.min_lr = 0.25;
  EXPECT_DOUBLE_EQ(lr_multiplier(w.schedule, 900, 0, 0), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(w.schedule, 990, 0, 0), 0.25);
}

TEST(Schedule, WallclockWarmdownInTime) {
  Config c = schedule_config(600);  // 600 s cap, 200 warm-down steps
  // At 100 ms/step the warm-down takes 20 s: it starts at 580 s.
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 5000, 500e3, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 5800, 580e3, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 5900, 590e3, 100), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 5990, 599e3, 100), 0.05);
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 6100, 610e3, 100), 0.0);
  // Start-up costs stay out of the step time: a 5 s first step and 9 steps of 100 ms.
  AgreedClock clock;
  EXPECT_DOUBLE_EQ(clock.elapsed(1), 0.0);
  clock.agree_first_step(5000);
  EXPECT_DOUBLE_EQ(clock.step_ms(), 0.0);  // no step without start-up costs yet
  EXPECT_DOUBLE_EQ(clock.elapsed(2), 5000.0);
  clock.agree(10, 5000 + 900);
  EXPECT_DOUBLE_EQ(clock.step_ms(), 100.0);
  EXPECT_DOUBLE_EQ(clock.elapsed(12), 6100.0);
}

// The schedule under a wall clock as the training loop drives it (each
// step's time reaches the clock one step late), over a recorded sequence of
// step times: a 3 s first step (start-up costs), then 100 ms steps. The
// independent computation is docs/MODEL.md's on the exact timeline: after k
// steps the elapsed time is T_k, the step time s = 100 ms (the first step
// left out); the multiplier is (cap - T_k) / (WARMDOWN_ITERS * s) once that
// is at most 1; QAT and the loop start once T_k reaches their fraction of
// the cap; SWA snapshots after step k when the multiplier of the step taken
// is below SWA_START_FRAC; the run ends after the first step with T_k >= cap.
TEST(Schedule, UnderAWallClockFollowsTheTimelineWithoutTheFirstStep) {
  Config c = schedule_config(20);  // 20 s cap
  c.schedule.iterations = 100000;
  c.schedule.warmdown_iters = 50;  // 5 s of warm-down at 100 ms/step
  c.qat.qat_enabled = true;
  c.qat.qat_start_frac = 0.85;
  c.model.loop_layers = LoopRange{0, 1};
  c.model.loop_start_frac = 0.35;
  c.averaging.swa_start_frac = 0.5;
  c.averaging.swa_every = 5;
  const double first = 3000, step = 100, cap = 20000, W = 50;
  auto duration = [&](std::int64_t k) { return k == 0 ? first : step; };  // of the step with 0-based index k

  // As the Trainer: plan step k, run it; after step 1 its time is agreed at
  // once, after step k >= 2 the report of step k-1 is read.
  AgreedClock clock;
  std::vector<StepPlan> plans;
  std::vector<double> T = {0};  // T[k]: the exact time after k steps
  std::int64_t k = 0;
  while (!run_finished(c, k, clock)) {
    plans.push_back(plan_step(c, k, clock));
    T.push_back(T.back() + duration(k));
    ++k;
    if (k == 1)
      clock.agree_first_step(T[1]);
    else
      clock.agree(k - 1, T[static_cast<std::size_t>(k - 1)]);
  }
  const std::int64_t steps = k;

  std::int64_t want_steps = 1;
  while (T[static_cast<std::size_t>(want_steps)] < cap) ++want_steps;
  EXPECT_EQ(steps, want_steps);
  EXPECT_EQ(steps, 171);  // 3000 + 170 * 100 = 20000
  std::int64_t first_swa = -1, qat_from = -1, loop_from = -1;
  const SwaTiming due = swa_timing(SwaStepIndex::Done);
  for (std::int64_t i = 0; i < steps; ++i) {
    const double t = T[static_cast<std::size_t>(i)], remaining = std::max(cap - t, 0.0);
    const double mult = remaining <= W * step ? remaining / (W * step) : 1.0;
    const StepPlan& p = plans[static_cast<std::size_t>(i)];
    // The first two steps are planned before any step time is known; no
    // threshold is near them here.
    if (i >= 2) EXPECT_DOUBLE_EQ(p.lr_mult, mult) << "step " << i;
    EXPECT_EQ(p.qat, t >= 0.85 * cap) << "step " << i;
    EXPECT_EQ(p.looped, t >= 0.35 * cap) << "step " << i;
    if (p.qat && qat_from < 0) qat_from = i;
    if (p.looped && loop_from < 0) loop_from = i;
    if (first_swa < 0 && p.lr_mult < c.averaging.swa_start_frac && due(i + 1, c.averaging.swa_every)) first_swa = i + 1;
  }
  EXPECT_EQ(loop_from, 41);   // T = 3000 + 40 * 100 >= 7000
  EXPECT_EQ(qat_from, 141);   // T = 3000 + 140 * 100 >= 17000
  EXPECT_EQ(first_swa, 150);  // mult < 0.5 once T > 17500 (step index 147 on), then the next multiple of 5
}

TEST(Schedule, LoopStartAtItsFraction) {
  Config c = schedule_config(600);
  c.model.loop_start_frac = 0.35;
  EXPECT_FALSE(loop_active(c, 10, 599e3));  // LOOP_LAYERS empty: never
  c.model.loop_layers = LoopRange{3, 5};
  EXPECT_FALSE(loop_active(c, 10, 209e3));
  EXPECT_TRUE(loop_active(c, 10, 210e3));
  c.schedule.max_wallclock_seconds = 0;
  EXPECT_FALSE(loop_active(c, 349, 0));
  EXPECT_TRUE(loop_active(c, 350, 0));
}

TEST(Schedule, QatStart) {
  Config c = schedule_config(600);
  c.qat.qat_start_frac = 0.85;
  EXPECT_FALSE(qat_active(c, 10, 599e3));  // QAT_ENABLED = 0: never
  c.qat.qat_enabled = true;
  EXPECT_FALSE(qat_active(c, 10, 509e3));
  EXPECT_TRUE(qat_active(c, 10, 510e3));
  c.schedule.max_wallclock_seconds = 0;
  EXPECT_FALSE(qat_active(c, 849, 0));
  EXPECT_TRUE(qat_active(c, 850, 0));
  c.qat.qat_start_frac = 0;  // from the first step (#219)
  EXPECT_TRUE(qat_active(c, 0, 0));
  c.schedule.max_wallclock_seconds = 600;
  EXPECT_TRUE(qat_active(c, 0, 0));
}


TEST(Schedule, AWarmdownOverTheWholeRunIsNoted) {
  Config c = schedule_config(0);
  EXPECT_EQ(schedule_note(c.schedule), "");
  c.schedule.warmdown_iters = 3000;  // longer than the run: below 1 from step 0
  EXPECT_LT(lr_multiplier(c.schedule, 0, 0, 0), 1.0);
  EXPECT_NE(schedule_note(c.schedule).find("WARMDOWN_ITERS=3000 >= ITERATIONS=1000: the warm-down covers the whole run"),
            std::string::npos);
  c.schedule.warmdown_iters = 1000;  // as long as the run: decays from step 1
  EXPECT_LT(lr_multiplier(c.schedule, 1, 0, 0), 1.0);
  EXPECT_NE(schedule_note(c.schedule), "");
  c.schedule.max_wallclock_seconds = 600;  // under a cap the warm-down is in time: no note from the keys alone
  EXPECT_EQ(schedule_note(c.schedule), "");
}

// With a GPTQ plan and a cap, the training loop leaves GPTQ_RESERVE_SECONDS
// of the wall clock to the calibration on training data.
TEST(Schedule, AGptqPlanReservesTheCalibrationsTime) {
  auto loaded = [](std::vector<std::string> sets) {
    return load_config({}, sets, [](const char*) -> const char* { return nullptr; });
  };
  EXPECT_EQ(loaded({}).schedule.training_seconds(), 600.0);
  EXPECT_EQ(loaded({"QUANT_ATTN=int6,floor,gptq"}).schedule.training_seconds(), 590.0);
  EXPECT_EQ(loaded({"QUANT_ATTN=int6,floor,gptq", "GPTQ_RESERVE_SECONDS=25"}).schedule.training_seconds(), 575.0);
  EXPECT_EQ(loaded({"QUANT_ATTN=int6,floor,gptq", "MAX_WALLCLOCK_SECONDS=0"}).schedule.training_seconds(), 0.0);
  EXPECT_THROW(loaded({"QUANT_ATTN=int6,floor,gptq", "MAX_WALLCLOCK_SECONDS=5"}), ConfigError);
  // The warm-down ends where training ends, not at the wall clock's end.
  Config c = loaded({"QUANT_ATTN=int6,floor,gptq"});
  EXPECT_DOUBLE_EQ(lr_multiplier(c.schedule, 1000, 590e3, 100), 0.0);
  EXPECT_GT(lr_multiplier(c.schedule, 1000, 580e3, 100), 0.0);
}
