// Whole training runs on a tiny model and corpus, in process.
#include <gtest/gtest.h>

#include <filesystem>

#include <map>
#include <tuple>

#include "helpers.h"
#include "pgolf/optim/averaging.h"
#include "pgolf/train/train.h"
#include "pgolf/core/io.h"
#include "pgolf/core/signals.h"
#include "pgolf/export/quant.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

namespace {

std::vector<NamedTensor> run_and_load(const Config& c) {
  TempDir out;
  Config cfg = c;
  cfg.run.log_dir = out.path();
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

TEST(Training, OverfitsOneBatch) {
  Config c = test::tiny_run(TempDir(), 1);
  c.run.seed = 3;
  GPT model(c.model, {});
  Optimizers opt(model, c.optim, at::kFloat);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor x = at::randint(c.model.vocab_size, {4, 16}, gen, at::kLong), y = at::randint(c.model.vocab_size, {4, 16}, gen, at::kLong);
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
  c.run.seed = 99;
  EXPECT_FALSE(bit_identical(a, run_and_load(c)));
}

// SWA_ADD_FINAL: the average of K snapshots S and the final weights F is
// (K*S + F)/(K+1). F comes from the same run without SWA (SWA does not change
// the trajectory), S from the run without the final weights.
TEST(Training, SwaWithTheFinalWeightsAdded) {
  TempDir dir;
  Config c = test::tiny_run(dir, 12);
  c.schedule.warmdown_iters = 12;
  c.averaging.swa_every = 2;
  c.averaging.swa_start_frac = 0.5;  // mult < 0.5 from step 7 on: snapshots after steps 8, 10, 12
  c.averaging.swa_step_index = SwaStepIndex::Done;
  c.averaging.swa_add_final = false;
  auto snapshots = run_and_load(c);
  c.averaging.swa_add_final = true;
  auto with_final = run_and_load(c);
  c.averaging.swa_enabled = false;
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
  c.schedule.warmdown_iters = 1000000;
  c.schedule.min_lr = 0.25;
  c.averaging.swa_start_frac = 0.5;
  c.averaging.swa_every = 4;
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
    c.averaging.swa_enabled = false;
    W[k] = run_and_load(c);
  }
  Config c = flat_lr_run(dir, 9);
  c.averaging.swa_step_index = SwaStepIndex::Done;  // after steps 4 and 8
  c.averaging.swa_add_final = false;
  expect_mean_of(run_and_load(c), {&W[4], &W[8]});
  c.averaging.swa_step_index = SwaStepIndex::Taken;  // after steps 1, 5 and 9, and step 9 again as the final weights
  c.averaging.swa_add_final = true;
  expect_mean_of(run_and_load(c), {&W[1], &W[5], &W[9], &W[9]});
  // One snapshot (after step 4 of 5): the run ends on its final weights.
  c = flat_lr_run(dir, 5);
  c.averaging.swa_step_index = SwaStepIndex::Done;
  c.averaging.swa_add_final = false;
  EXPECT_TRUE(bit_identical(run_and_load(c), W[5]));
}

// QAT acts in the training forward only: the run's validation scores the
// plain weights, exactly as an evaluation of the saved weights does.
TEST(Training, QatRunsValidateThePlainWeights) {
  TempDir dir;
  Config c = test::tiny_run(dir, 3);
  c.qat.qat_enabled = true;
  c.qat.qat_start_frac = 0;
  c.averaging.swa_enabled = false;
  c.eval.prequant_eval = false;
  RunLog log(c);
  const TrainResult r = train(c, log);
  GPT plain(c.model, {});
  load_weights(plain, r.weights_path);
  const ScoringData data = load_scoring_data(c, at::kCPU);
  const std::int64_t batch_seqs = std::max<std::int64_t>(1, c.train.val_batch_size / grad_accum_steps(1) / c.train.train_seq_len);
  const double want = evaluate_standard(plain, data.val, data.bytes, c.train.train_seq_len, batch_seqs).val_loss();
  EXPECT_EQ(r.final_eval.val_loss(), want);
  // The fake-quantised weights score differently, so the equality says something.
  GPT quantised(c.model, {});
  load_weights(quantised, r.weights_path);
  {
    at::NoGradGuard no_grad;
    const QuantOptions o = quant_options(c.export_, c.qat);
    for (const auto& p : quantised.parameters())
      if (auto rq = qat_quantizer(p.name, o)) p.tensor.detach().copy_(fake_quantize_rows(p.tensor.detach(), *rq));
  }
  EXPECT_GT(std::abs(evaluate_standard(quantised, data.val, data.bytes, c.train.train_seq_len, batch_seqs).val_loss() - want), 1e-5);
}

TEST(Training, QatFromTheFirstStepIsLoggedAtStepZero) {
  TempDir dir;
  Config c = test::tiny_run(dir, 3);
  c.qat.qat_enabled = true;
  c.qat.qat_start_frac = 0;
  RunLog log(c);
  train(c, log);
  EXPECT_NE(read_file(dir.file("run/train.log")).find("qat:start step:0"), std::string::npos);
}

TEST(Training, WarmupRestoresEverything) {
  TempDir dir;
  Config c = test::tiny_run(dir, 6);
  c.averaging.ema_enabled = true;  // EMA state starts from the restored weights too
  auto without = run_and_load(c);
  c.train.warmup_steps = 3;
  auto with = run_and_load(c);
  EXPECT_TRUE(bit_identical(without, with));
}

TEST(Training, LossFallsAndRunFolderHasOutputs) {
  TempDir dir;
  Config c = test::tiny_run(dir, 30);
  c.train.val_loss_every = 15;
  c.schedule.warmdown_iters = 10;
  RunLog log(c);
  TrainResult r = train(c, log);
  EXPECT_EQ(r.steps, 30);
  EXPECT_LT(r.final_eval.val_loss(), 5.0);  // from ~ln(400) = 6.0
  EXPECT_GT(r.final_eval.bytes, 0);
  for (const char* f : {"config.env", "train.log", "metrics.jsonl", "model.safetensors", "final_model.pgolf"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string("run/") + f))) << f;
  std::string logtext = read_file(dir.file("run/train.log"));
  for (const char* key : {"model_params:", "world_size:1 grad_accum_steps:8", "step:30/30 val_loss:", "swa:applying averaged",
                          "final_prequant_sliding val_loss:", "Serialized model fp+brotli: ",  // the tiny model's matrices are all below QUANT_PASSTHROUGH_NUMEL
                          "Total submission size fp+brotli: ", "final_roundtrip val_loss:",
                          "final_sliding_window val_loss:", "final_sliding_window_exact val_loss:"})
    EXPECT_NE(logtext.find(key), std::string::npos) << key;
  // LOG_COMPAT=baseline (the default): train_gpt.py's line carries the non-sliding round trip, as there.
  auto values = [&](const std::string& label) {
    const auto at = logtext.find(label + " val_loss:");
    return at == std::string::npos ? std::string("missing") : logtext.substr(at + label.size(), logtext.find('\n', at) - at - label.size());
  };
  EXPECT_NE(values("final_roundtrip_exact"), "missing");
  EXPECT_EQ(values("final_int8_zlib_roundtrip_exact"), values("final_roundtrip_exact"));
  EXPECT_NE(values("final_roundtrip_exact"), values("final_sliding_window_exact"));
  // The counted code is the train_gpt.py written next to the artifact.
  EXPECT_EQ(r.exported.code_bytes, std::filesystem::file_size(dir.file("run/train_gpt.py")));
  EXPECT_EQ(r.exported.total(), r.exported.artifact_bytes + r.exported.code_bytes);
  EXPECT_GT(r.exported.code_bytes, 50000u);  // the sources really are counted
  EXPECT_EQ(r.score.tokens, r.final_eval.tokens);  // every target scored once, as in the standard evaluation
  EXPECT_LT(r.score.val_bpb(), r.prequant.val_bpb() + 0.05);  // small quantisation penalty
}

// Every option of the 1.0611 record on at once, on a small model: 200 steps
// train (the loss falls well below the uniform ln 400 = 6.0 and below the
// first validation), the loop switches on, and the artifact (GPTQ + SDClip
// plans) is written and scores close to the trained weights.
TEST(Training, SmallModelWithEveryRecordOptionTrainsAndExports) {
  TempDir dir;
  Config c = test::tiny_run(dir, 200);
  c.model.num_layers = 4;
  c.model.mlp_mult = 4;
  c.model.mlp_activation = MlpActivation::LeakyRelu2;
  c.model.smear_bos_aware = true;
  c.model.attn_out_gate = true;
  c.model.xsa_last_n = 4;
  c.model.rope_dims = 8;
  c.model.ln_scale = true;
  c.model.loop_layers = LoopRange{1, 2};
  c.model.loop_repeats = 2;
  c.model.loop_start_frac = 0.35;
  c.model.skip_gates = true;
  c.model.parallel_resid_from = 3;
  c.schedule.lr_schedule = LrSchedule::HoldDecay;
  c.schedule.min_lr = 0.1;
  c.optim.muon_ns_coeffs = {NsSchedule::PolarExpress, {}};
  c.optim.muon_row_norm = true;
  c.optim.beta2 = 0.99;
  c.averaging.swa_enabled = false;
  c.averaging.ema_enabled = true;
  c.averaging.ema_decay = 0.99;
  c.train.val_loss_every = 100;
  c.export_.quant_attn = parse_tensor_plan("int6,k=13,sym,gptq");
  c.export_.quant_mlp = parse_tensor_plan("int6,k=11.5,sym,gptq");
  c.export_.gptq_tokens = 2048;
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
  EXPECT_LT(r.score.val_bpb(), r.prequant.val_bpb() + 0.1);
}


// Learning rates that blow up: the first non-finite loss or weight stops
// the run with an error naming the step, and nothing of that state is saved:
// every checkpoint on disk holds finite weights, and no final weights exist.
TEST(Training, NonFiniteLossStopsTheRunBeforeAnythingOfItIsSaved) {
  TempDir dir;
  Config c = test::tiny_run(dir, 40);
  c.optim.matrix_lr = c.optim.scalar_lr = c.optim.tied_embed_lr = 1e4;
  c.optim.grad_clip_norm = 0;
  c.train.checkpoint_every = 1;
  RunLog log(c);
  std::string message;
  try {
    train(c, log);
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("so the run stops here"), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(dir.file("run/model.safetensors")));
  ASSERT_TRUE(std::filesystem::exists(dir.file("run/checkpoint.safetensors")));
  const TrainState s = load_checkpoint(dir.file("run/checkpoint.safetensors"));
  for (const auto& p : s.weights) EXPECT_TRUE(at::isfinite(p.tensor).all().item<bool>()) << p.name;
  // The loss of step k+1 or the weights after it: the first state not saved.
  const std::string next = std::to_string(s.step + 1);
  EXPECT_TRUE(message.find("step:" + next + " train_loss:") == 0 || message.find("after step " + next + " parameter") == 0)
      << message << " (checkpoint of step " << s.step << ")";
}

// A run that reads more tokens than its shards hold says so once, at the
// step where the stream wraps (computed here from the shard sizes: each step
// reads 8 micro-batches of local + 1 tokens), and how many epochs it made.
TEST(Training, AWrapOfTheTrainingStreamIsLoggedOnce) {
  TempDir dir;
  Config c = test::tiny_run(dir, 1);
  std::size_t total = 0;
  for (const auto& f : shard_files(train_pattern(c.run.data_path))) total += Shard(f).num_tokens();
  const std::int64_t per_step = 8 * (c.train.train_batch_tokens / 8 + 1);
  const std::int64_t wrap_step = static_cast<std::int64_t>(total) / per_step + 1;  // the first step past the end
  c.schedule.iterations = wrap_step + 2;
  c.eval.prequant_eval = false;
  RunLog log(c);
  train(c, log);
  const std::string text = read_file(dir.file("run/train.log"));
  const std::string line = "data: the training stream wrapped at step " + std::to_string(wrap_step) + ":";
  EXPECT_NE(text.find(line), std::string::npos) << text;
  EXPECT_EQ(text.find(line), text.rfind("data: the training stream wrapped")) << "logged more than once";
  EXPECT_NE(text.find("train_tokens:" + std::to_string(total)), std::string::npos);
  EXPECT_NE(text.find("data: 2 epochs over the training shards"), std::string::npos) << text;
}

// SIGTERM held by rank 0 alone (rank 1 is given no StopSignals) stops both
// ranks after the same step: the report of step 1, read after step 2, carries
// it. The weights are saved, nothing is exported.
TEST(Training, StopSignalOfOneRankStopsEveryRankAfterTheSameStep) {
  TempDir dir;
  Config c = test::tiny_run(dir, 50);
  c.eval.prequant_eval = false;
  c.runtime.num_threads = 1;
  const StopSignals signals;
  ASSERT_EQ(::raise(SIGTERM), 0);
  std::vector<TrainResult> r(2);
  test::run_two_ranks(test::test_port(50), [&](Dist& dist, int rank) {
    RunLog log(c, rank == 0 ? RunLog::Mode::Files : RunLog::Mode::Silent);
    r[rank] = train(c, log, dist, at::kCPU, nullptr, rank == 0 ? &signals : nullptr);
  });
  for (int rank : {0, 1}) {
    EXPECT_EQ(r[rank].stop_signal, SIGTERM) << "rank " << rank;
    EXPECT_EQ(r[rank].steps, 2) << "rank " << rank;
  }
  const std::string log = read_file(dir.file("run/train.log"));
  EXPECT_NE(log.find("stopped: SIGTERM after step:2/50 train_time:"), std::string::npos) << log;
  EXPECT_TRUE(std::filesystem::exists(dir.file("run/model.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("run/final_model.pgolf")));
}
