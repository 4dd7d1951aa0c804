// Schedule, averaging and whole training runs on a tiny model and corpus.
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
  c.iterations = 1000;
  c.warmdown_iters = 200;
  c.max_wallclock_seconds = cap_seconds;
  return c;
}

std::vector<NamedTensor> run_and_load(const Config& c) {
  TempDir out;
  Config cfg = c;
  cfg.log_dir = out.path();
  RunLog log(cfg);
  TrainResult r = train(cfg, log);
  return load_safetensors(r.weights_path);
}

bool bit_identical(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || !at::equal(a[i].tensor, b[i].tensor)) return false;
  return true;
}

}  // namespace

TEST(Schedule, IterationWarmdown) {
  Config c = schedule_config(0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 0, 0, 0), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 799, 0, 0), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 800, 0, 0), 1.0);  // (1000-800)/200
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 900, 0, 0), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 999, 0, 0), 0.005);
  c.warmdown_iters = 0;
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 999, 0, 0), 1.0);
}

// The 1.0611 record's schedule: 1 for the first 15% of the run, then linear
// to 0 at its end, floored at MIN_LR = 0.1 (in time under a cap, else in steps).
TEST(Schedule, HoldThenDecayWithAFloor) {
  Config c = schedule_config(100);  // 100 s cap
  c.lr_schedule = "hold_decay";
  c.lr_hold_frac = 0.15;
  c.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 0, 0, 50), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 100, 10e3, 50), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 150, 15e3, 50), 1.0);           // (1 - 0.15) / 0.85
  EXPECT_NEAR(lr_multiplier(c, 575, 57.5e3, 50), 0.5, 1e-12);      // (1 - 0.575) / 0.85
  EXPECT_NEAR(lr_multiplier(c, 830, 83e3, 50), 0.2, 1e-12);        // (1 - 0.83) / 0.85
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 950, 95e3, 50), 0.1);          // 0.0588 floored
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 1100, 110e3, 50), 0.1);
  c.max_wallclock_seconds = 0;  // in steps of ITERATIONS = 1000
  EXPECT_NEAR(lr_multiplier(c, 575, 1e9, 50), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 100, 0, 50), 1.0);
  c.min_lr = 0;
  EXPECT_NEAR(lr_multiplier(c, 1000, 0, 50), 0.0, 1e-12);
  // MIN_LR floors the seeds' warm-down too.
  Config w = schedule_config(0);
  w.min_lr = 0.25;
  EXPECT_DOUBLE_EQ(lr_multiplier(w, 900, 0, 0), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(w, 990, 0, 0), 0.25);
}

TEST(Schedule, WallclockWarmdownInTime) {
  Config c = schedule_config(600);  // 600 s cap, 200 warm-down steps
  // At 100 ms/step the warm-down takes 20 s: it starts at 580 s.
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 5000, 500e3, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 5800, 580e3, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 5900, 590e3, 100), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 5990, 599e3, 100), 0.05);
  EXPECT_DOUBLE_EQ(lr_multiplier(c, 6100, 610e3, 100), 0.0);
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
  c.iterations = 100000;
  c.warmdown_iters = 50;  // 5 s of warm-down at 100 ms/step
  c.qat_enabled = true;
  c.qat_start_frac = 0.85;
  c.loop_layers = "0-1";
  c.loop_start_frac = 0.35;
  c.swa_start_frac = 0.5;
  c.swa_every = 5;
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
  const SwaTiming due = swa_timing("done");
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
    if (first_swa < 0 && p.lr_mult < c.swa_start_frac && due(i + 1, c.swa_every)) first_swa = i + 1;
  }
  EXPECT_EQ(loop_from, 41);   // T = 3000 + 40 * 100 >= 7000
  EXPECT_EQ(qat_from, 141);   // T = 3000 + 140 * 100 >= 17000
  EXPECT_EQ(first_swa, 150);  // mult < 0.5 once T > 17500 (step index 147 on), then the next multiple of 5
}

TEST(Schedule, LoopStartAtItsFraction) {
  Config c = schedule_config(600);
  c.loop_start_frac = 0.35;
  EXPECT_FALSE(loop_active(c, 10, 599e3));  // LOOP_LAYERS empty: never
  c.loop_layers = "3-5";
  EXPECT_FALSE(loop_active(c, 10, 209e3));
  EXPECT_TRUE(loop_active(c, 10, 210e3));
  c.max_wallclock_seconds = 0;
  EXPECT_FALSE(loop_active(c, 349, 0));
  EXPECT_TRUE(loop_active(c, 350, 0));
}

TEST(Schedule, QatStart) {
  Config c = schedule_config(600);
  c.qat_start_frac = 0.85;
  EXPECT_FALSE(qat_active(c, 10, 599e3));  // QAT_ENABLED = 0: never
  c.qat_enabled = true;
  EXPECT_FALSE(qat_active(c, 10, 509e3));
  EXPECT_TRUE(qat_active(c, 10, 510e3));
  c.max_wallclock_seconds = 0;
  EXPECT_FALSE(qat_active(c, 849, 0));
  EXPECT_TRUE(qat_active(c, 850, 0));
  c.qat_start_frac = 0;  // from the first step (#219)
  EXPECT_TRUE(qat_active(c, 0, 0));
  c.max_wallclock_seconds = 600;
  EXPECT_TRUE(qat_active(c, 0, 0));
}

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
  const SwaTiming done = swa_timing("done"), taken = swa_timing("taken");
  std::vector<std::int64_t> by_done, by_taken;
  for (std::int64_t k = 1; k <= 120; ++k) {
    if (done(k, 50)) by_done.push_back(k);
    if (taken(k, 50)) by_taken.push_back(k);
  }
  EXPECT_EQ(by_done, (std::vector<std::int64_t>{50, 100}));
  EXPECT_EQ(by_taken, (std::vector<std::int64_t>{1, 51, 101}));
  EXPECT_THROW(swa_timing("after"), std::invalid_argument);
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
  EXPECT_EQ(run(swa_timing("taken"), true), std::make_tuple(true, std::int64_t{3}, (57.0 + 61.0 + 64.0) / 3.0));
  // #219, #286: after steps 56, 60 and 64.
  EXPECT_EQ(run(swa_timing("done"), false), std::make_tuple(true, std::int64_t{3}, (56.0 + 60.0 + 64.0) / 3.0));
  // A snapshot on the final step and the final weights added: counted twice.
  EXPECT_EQ(run(swa_timing("done"), true), std::make_tuple(true, std::int64_t{4}, (56.0 + 60.0 + 64.0 + 64.0) / 4.0));
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

TEST(Training, OverfitsOneBatch) {
  Config c = test::tiny_run(TempDir(), 1);
  c.seed = 3;
  GPT model(c, {});
  Optimizers opt(model, c, at::kFloat);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor x = at::randint(c.vocab_size, {4, 16}, gen, at::kLong), y = at::randint(c.vocab_size, {4, 16}, gen, at::kLong);
  double first = 0, last = 0;
  for (int i = 0; i < 150; ++i) {
    opt.zero_grad();
    at::Tensor loss = model.loss(x, y);
    loss.backward();
    opt.step(i, 1.0);
    (i == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_GT(first, 5.5);  // ~ln(400) = 6.0 at the start
  EXPECT_LT(last, 0.5);   // memorised: 64 random targets
}

TEST(Training, SameSeedGivesBitIdenticalWeights) {
  TempDir dir;
  Config c = test::tiny_run(dir, 6);
  auto a = run_and_load(c), b = run_and_load(c);
  EXPECT_TRUE(bit_identical(a, b));
  c.seed = 99;
  EXPECT_FALSE(bit_identical(a, run_and_load(c)));
}

// SWA_ADD_FINAL: the average of K snapshots S and the final weights F is
// (K*S + F)/(K+1). F comes from the same run without SWA (SWA does not change
// the trajectory), S from the run without the final weights.
TEST(Training, SwaWithTheFinalWeightsAdded) {
  TempDir dir;
  Config c = test::tiny_run(dir, 12);
  c.warmdown_iters = 12;
  c.swa_every = 2;
  c.swa_start_frac = 0.5;  // mult < 0.5 from step 7 on: snapshots after steps 8, 10, 12
  c.swa_step_index = "done";
  c.swa_add_final = false;
  auto snapshots = run_and_load(c);
  c.swa_add_final = true;
  auto with_final = run_and_load(c);
  c.swa_enabled = false;
  auto final_weights = run_and_load(c);
  const double K = 3;
  double max_diff = 0;
  for (std::size_t i = 0; i < with_final.size(); ++i) {
    at::Tensor want = (snapshots[i].tensor.to(at::kDouble) * K + final_weights[i].tensor.to(at::kDouble)) / (K + 1);
    max_diff = std::max(max_diff, (with_final[i].tensor.to(at::kDouble) - want).abs().max().item<double>());
  }
  EXPECT_LT(max_diff, 1e-6);
  EXPECT_FALSE(bit_identical(snapshots, with_final));
}

namespace {

// A run on which every step has LR multiplier MIN_LR = 0.25 (a warm-down far
// longer than the run, floored), so a run of k steps ends on the weights
// after step k of any longer run: the snapshots SWA should average, recorded
// one run each.
Config flat_lr_run(const TempDir& dir, std::int64_t iterations) {
  Config c = test::tiny_run(dir, iterations);
  c.warmdown_iters = 1000000;
  c.min_lr = 0.25;
  c.swa_start_frac = 0.5;
  c.swa_every = 4;
  return c;
}

void expect_mean_of(const std::vector<NamedTensor>& got, const std::vector<const std::vector<NamedTensor>*>& snapshots) {
  double max_diff = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    at::Tensor want = at::zeros_like(got[i].tensor, at::kDouble);
    for (const auto* s : snapshots) want += (*s)[i].tensor.to(at::kDouble);
    want /= static_cast<double>(snapshots.size());
    max_diff = std::max(max_diff, (got[i].tensor.to(at::kDouble) - want).abs().max().item<double>());
  }
  EXPECT_LT(max_diff, 1e-6);
}

}  // namespace

TEST(Training, SwaAveragesTheStepsItsRuleNames) {
  TempDir dir;
  std::map<std::int64_t, std::vector<NamedTensor>> W;
  for (std::int64_t k : {1, 4, 5, 8, 9}) {
    Config c = flat_lr_run(dir, k);
    c.swa_enabled = false;
    W[k] = run_and_load(c);
  }
  Config c = flat_lr_run(dir, 9);
  c.swa_step_index = "done";  // after steps 4 and 8
  c.swa_add_final = false;
  expect_mean_of(run_and_load(c), {&W[4], &W[8]});
  c.swa_step_index = "taken";  // after steps 1, 5 and 9, and step 9 again as the final weights
  c.swa_add_final = true;
  expect_mean_of(run_and_load(c), {&W[1], &W[5], &W[9], &W[9]});
  // One snapshot (after step 4 of 5): the run ends on its final weights.
  c = flat_lr_run(dir, 5);
  c.swa_step_index = "done";
  c.swa_add_final = false;
  EXPECT_TRUE(bit_identical(run_and_load(c), W[5]));
}

// QAT acts in the training forward only: the run's validation scores the
// plain weights, exactly as an evaluation of the saved weights does.
TEST(Training, QatRunsValidateThePlainWeights) {
  TempDir dir;
  Config c = test::tiny_run(dir, 3);
  c.qat_enabled = true;
  c.qat_start_frac = 0;
  c.swa_enabled = false;
  c.prequant_eval = false;
  RunLog log(c);
  const TrainResult r = train(c, log);
  GPT plain(c, {});
  load_weights(plain, r.weights_path);
  const ScoringData data = load_scoring_data(c, at::kCPU);
  const std::int64_t batch_seqs = std::max<std::int64_t>(1, c.val_batch_size / grad_accum_steps(1) / c.train_seq_len);
  const double want = evaluate_standard(plain, data.val, data.bytes, c.train_seq_len, batch_seqs).val_loss();
  EXPECT_EQ(r.final_eval.val_loss(), want);
  // The fake-quantised weights score differently, so the equality says something.
  GPT quantised(c, {});
  load_weights(quantised, r.weights_path);
  {
    at::NoGradGuard no_grad;
    const QuantOptions o = quant_options(c);
    for (const auto& p : quantised.parameters())
      if (auto rq = qat_quantizer(p.name, o)) p.tensor.detach().copy_(fake_quantize_rows(p.tensor.detach(), *rq));
  }
  EXPECT_GT(std::abs(evaluate_standard(quantised, data.val, data.bytes, c.train_seq_len, batch_seqs).val_loss() - want), 1e-5);
}

TEST(Training, QatFromTheFirstStepIsLoggedAtStepZero) {
  TempDir dir;
  Config c = test::tiny_run(dir, 3);
  c.qat_enabled = true;
  c.qat_start_frac = 0;
  RunLog log(c);
  train(c, log);
  EXPECT_NE(read_file(dir.file("run/train.log")).find("qat:start step:0"), std::string::npos);
}

TEST(Training, WarmupRestoresEverything) {
  TempDir dir;
  Config c = test::tiny_run(dir, 6);
  c.ema_enabled = true;  // EMA state starts from the restored weights too
  auto without = run_and_load(c);
  c.warmup_steps = 3;
  auto with = run_and_load(c);
  EXPECT_TRUE(bit_identical(without, with));
}

TEST(Training, LossFallsAndRunFolderHasOutputs) {
  TempDir dir;
  Config c = test::tiny_run(dir, 30);
  c.val_loss_every = 15;
  c.warmdown_iters = 10;
  RunLog log(c);
  TrainResult r = train(c, log);
  EXPECT_EQ(r.steps, 30);
  EXPECT_LT(r.final_eval.val_loss(), 5.0);  // from ~ln(400) = 6.0
  EXPECT_GT(r.final_eval.bytes, 0);
  for (const char* f : {"config.env", "train.log", "metrics.jsonl", "model.safetensors", "final_model.pgolf"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string("run/") + f))) << f;
  std::string logtext = read_file(dir.file("run/train.log"));
  for (const char* key : {"model_params:", "world_size:1 grad_accum_steps:8", "step:30/30 val_loss:", "swa:applying averaged",
                          "final_prequant_sliding val_loss:", "Serialized model int6+zstd: ", "Total submission size int6+zstd: ",
                          "final_int8_zlib_roundtrip val_loss:", "final_int8_zlib_roundtrip_exact val_loss:"})
    EXPECT_NE(logtext.find(key), std::string::npos) << key;
  EXPECT_EQ(r.exported.total(), r.exported.artifact_bytes + code_bytes());
  EXPECT_GT(code_bytes(), 50000u);  // the sources really are counted
  EXPECT_EQ(r.roundtrip.tokens, r.final_eval.tokens);  // every target scored once, as in the standard evaluation
  EXPECT_LT(r.roundtrip.val_bpb(), r.prequant.val_bpb() + 0.05);  // small quantisation penalty
}

// Every option of the 1.0611 record on at once, on a small model: 200 steps
// train (the loss falls well below the uniform ln 400 = 6.0 and below the
// first validation), the loop switches on, and the artifact (GPTQ + SDClip
// plans) is written and scores close to the trained weights.
TEST(Training, SmallModelWithEveryRecordOptionTrainsAndExports) {
  TempDir dir;
  Config c = test::tiny_run(dir, 200);
  c.num_layers = 4;
  c.mlp_mult = 4;
  c.mlp_activation = "leaky_relu2";
  c.smear_bos_aware = true;
  c.attn_out_gate = true;
  c.xsa_last_n = 4;
  c.rope_dims = 8;
  c.ln_scale = true;
  c.loop_layers = "1-2";
  c.loop_repeats = 2;
  c.loop_start_frac = 0.35;
  c.skip_gates = true;
  c.parallel_resid_from = 3;
  c.lr_schedule = "hold_decay";
  c.min_lr = 0.1;
  c.muon_ns_coeffs = "polar_express";
  c.muon_row_norm = true;
  c.beta2 = 0.99;
  c.swa_enabled = false;
  c.ema_enabled = true;
  c.ema_decay = 0.99;
  c.val_loss_every = 100;
  c.quant_attn = "int6,k=13,sym,gptq";
  c.quant_mlp = "int6,k=11.5,sym,gptq";
  c.gptq_tokens = 2048;
  RunLog log(c);
  TrainResult r = train(c, log);
  EXPECT_EQ(r.steps, 200);
  const std::string text = read_file(dir.file("run/train.log"));
  EXPECT_NE(text.find("loop:start step:70 layers:1-2 repeats:2"), std::string::npos) << text;
  const auto first_val = text.find("step:0/200 val_loss:");
  ASSERT_NE(first_val, std::string::npos);
  const double val0 = std::stod(text.substr(first_val + 20));
  EXPECT_LT(r.final_eval.val_loss(), 5.0);
  EXPECT_LT(r.final_eval.val_loss(), val0 - 0.5);
  EXPECT_TRUE(std::filesystem::exists(r.exported.path));
  EXPECT_LT(r.roundtrip.val_bpb(), r.prequant.val_bpb() + 0.1);
}

// `pgolf eval` on the artifact reproduces the training run's final line.
TEST(Training, EvalCommandReproducesTheFinalLine) {
  TempDir dir;
  Config c = test::tiny_run(dir, 8);
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto run = test::run_pgolf("train --config " + dir.file("tiny.env"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  auto final_line = [](const std::string& out) {
    auto at = out.find("final_int8_zlib_roundtrip_exact");
    return at == std::string::npos ? std::string("missing") : out.substr(at, out.find('\n', at) - at);
  };
  auto eval = test::run_pgolf("eval " + dir.file("run/final_model.pgolf") + " --config " + dir.file("tiny.env"));
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(final_line(run.output), "missing") << run.output;
  EXPECT_EQ(final_line(eval.output), final_line(run.output));
  auto inspect = test::run_pgolf("inspect " + dir.file("run/final_model.pgolf"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("blocks.1.mlp.fc.weight"), std::string::npos);
  EXPECT_NE(inspect.output.find("(fits)"), std::string::npos);
}

// Depth recurrence switches on once, at its fraction of ITERATIONS, warm-up
// having run both shapes; the round trip and `pgolf eval` score the looped model.
TEST(Training, DepthRecurrenceSwitchesOnOnceAndStaysOnForScoring) {
  TempDir dir;
  Config c = test::tiny_run(dir, 12);
  c.num_layers = 3;
  c.loop_layers = "1-1";
  c.loop_repeats = 2;
  c.loop_start_frac = 0.5;
  c.skip_gates = true;
  c.warmup_steps = 2;
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto run = test::run_pgolf("train --config " + dir.file("tiny.env"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto at = run.output.find("loop:start step:6 layers:1-1 repeats:2");
  EXPECT_NE(at, std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("loop:start", at + 1), std::string::npos) << "switched on twice";
  auto final_line = [](const std::string& out) {
    auto f = out.find("final_int8_zlib_roundtrip_exact");
    return f == std::string::npos ? std::string("missing") : out.substr(f, out.find('\n', f) - f);
  };
  auto eval = test::run_pgolf("eval " + dir.file("run/final_model.pgolf") + " --config " + dir.file("tiny.env"));
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(final_line(run.output), "missing");
  EXPECT_EQ(final_line(eval.output), final_line(run.output));
}

// In-place progress lines: PROGRESS=on/off decide; auto wants a terminal and
// no launcher (OpenMPI gives each rank a pseudo-terminal, and the ranks'
// output then lands in one log file).
TEST(Progress, OnlyOnATerminalWithoutALauncherUnlessForced) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  };
  const std::map<std::string, std::string> none, mpirun = {{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "8"}},
                                                 slurm = {{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}};
  EXPECT_TRUE(progress_wanted("auto", true, env(none)));
  EXPECT_FALSE(progress_wanted("auto", false, env(none)));
  EXPECT_FALSE(progress_wanted("auto", true, env(mpirun)));
  EXPECT_FALSE(progress_wanted("auto", true, env(slurm)));
  EXPECT_FALSE(progress_wanted("auto", true, env({{"RANK", "0"}, {"WORLD_SIZE", "3"}})));  // malformed: still a launcher
  EXPECT_TRUE(progress_wanted("on", false, env(mpirun)));
  EXPECT_FALSE(progress_wanted("off", true, env(none)));
}

// A run on a pseudo-terminal (`script`) rewrites its progress line in place;
// the same run under mpirun's variables, or with PROGRESS=off, prints none of
// those codes; train.log never holds them.
TEST(Progress, TerminalRunsUnderALauncherStayGreppable) {
  TempDir dir;
  Config c = test::tiny_run(dir, 12);
  c.train_log_every = 100;  // steps 11 and 12 go to the progress line
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto on_pty = [&](const std::string& env, const std::string& run) {
    return test::run_shell("script -qec '" + env + " " + PGOLF_BINARY + " train --config " + dir.file("tiny.env") +
                           " --set RUN_ID=" + run + " --set PREQUANT_EVAL=0' /dev/null");
  };
  const std::string codes = "\r\033[K";
  auto plain = on_pty("", "plain");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_NE(plain.output.find(codes), std::string::npos) << "no progress line on a terminal";
  auto launched = on_pty("OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=1", "mpi");
  ASSERT_EQ(launched.exit_code, 0) << launched.output;
  EXPECT_EQ(launched.output.find(codes), std::string::npos);
  EXPECT_NE(launched.output.find("step:12/12 train_loss"), std::string::npos);
  auto off = on_pty("PROGRESS=off", "off");
  EXPECT_EQ(off.output.find(codes), std::string::npos);
  for (const char* run : {"plain", "mpi", "off"})
    EXPECT_EQ(read_file(dir.file(std::string(run) + "/train.log")).find('\r'), std::string::npos) << run;
}

// A non-finite validation score ends the run with an error naming it and a
// non-zero exit (no per-step host sync: a NaN train_loss surfaces at the next
// validation); here the weights hold a NaN from the start.
TEST(Training, NonFiniteValidationScoreEndsTheRun) {
  TempDir dir;
  Config c = test::tiny_run(dir, 4);
  GPT m(c, {});
  m.param("tok_emb.weight").detach()[3].fill_(NAN);
  save_safetensors(dir.file("nan.safetensors"), m.parameters());
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto r = test::run_pgolf("train --config " + dir.file("tiny.env") + " --set INIT_WEIGHTS=" + dir.file("nan.safetensors"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("pgolf: error: validation: val_loss:nan val_bpb:nan is not finite"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("done: steps"), std::string::npos) << r.output;
}
