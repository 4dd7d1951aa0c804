#include "pgolf/train/train.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "pgolf/config/components.h"
#include "pgolf/config/record.h"
#include "pgolf/optim/averaging.h"
#include "pgolf/train/checkpoint.h"
#include "pgolf/train/fingerprint.h"
#include "pgolf/export/fit.h"
#include "pgolf/core/runtime.h"
#include "pgolf/core/signals.h"
#include "pgolf/core/text.h"
#include "pgolf/data/tokenizer_check.h"
#include "pgolf/train/compliance.h"
#include "pgolf/train/transfer.h"
#include "pgolf/model/weights.h"

namespace pgolf {
namespace {

// Copies saved tensors into live ones of the same count, dtypes and shapes;
// `what` ("optimiser state") names them in the error otherwise.
void restore_tensors(const std::vector<at::Tensor>& live, const std::vector<at::Tensor>& saved, const std::string& what) {
  if (live.size() != saved.size())
    throw std::runtime_error(what + ": the checkpoint holds " + std::to_string(saved.size()) + " tensors, the run " +
                             std::to_string(live.size()));
  for (std::size_t i = 0; i < live.size(); ++i)
    if (live[i].scalar_type() != saved[i].scalar_type() || live[i].sizes() != saved[i].sizes())
      throw std::runtime_error(what + " tensor " + std::to_string(i) + ": the checkpoint's is " +
                               c10::toString(saved[i].scalar_type()) + c10::str(saved[i].sizes()) + ", the run's " +
                               c10::toString(live[i].scalar_type()) + c10::str(live[i].sizes()));
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < live.size(); ++i) live[i].detach().copy_(saved[i]);
}

}  // namespace

bool qat_active(const Config& cfg, std::int64_t step, double elapsed_ms) {
  return cfg.qat.qat_enabled && run_fraction_reached(cfg.schedule, cfg.qat.qat_start_frac, step, elapsed_ms);
}

bool loop_active(const Config& cfg, std::int64_t step, double elapsed_ms) {
  return cfg.model.loop_layers.on() && run_fraction_reached(cfg.schedule, cfg.model.loop_start_frac, step, elapsed_ms);
}

StepPlan plan_step(const Config& cfg, std::int64_t step, const AgreedClock& clock) {
  const double elapsed = clock.elapsed(step);
  return {lr_multiplier(cfg.schedule, step, elapsed, clock.step_ms()), qat_active(cfg, step, elapsed), loop_active(cfg, step, elapsed)};
}

bool run_finished(const Config& cfg, std::int64_t steps_done, const AgreedClock& clock) {
  if (steps_done >= cfg.schedule.iterations) return true;
  return cfg.schedule.training_seconds() > 0 && clock.elapsed(steps_done) >= cfg.schedule.training_seconds() * 1000.0;
}

namespace {

std::vector<at::Tensor> clone_all(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

void copy_all(const std::vector<at::Tensor>& dst, const std::vector<at::Tensor>& src) {
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < dst.size(); ++i) dst[i].detach().copy_(src[i]);
}

}  // namespace

TrainResult train(const Config& cfg, RunLog& log, const TrainState* resume, const StopSignals* signals) {
  Dist single;
  return train(cfg, log, single, select_device(cfg.runtime.device), resume, signals);
}

namespace {

using Clock = std::chrono::steady_clock;

std::vector<at::Tensor> tensors_of(const GPT& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p.tensor);
  return out;
}

// One rank's run, in phases: warm_up, restore (when resuming), loop, average,
// save, export_and_score. The members are what the phases share.
class Trainer {
 public:
  Trainer(const Config& cfg, RunLog& log, Dist& dist, const at::Device& device, const StopSignals* signals)
      : cfg_(cfg), log_(log), dist_(dist), signals_(signals), device_(device), mopts_(model_options_for(device, static_cast<std::uint64_t>(cfg.run.seed), cfg.runtime.fused_kernels)),
        world_(dist.world_size()), rank_(dist.rank()), grad_accum_(grad_accum_steps(world_)),
        data_(load_scoring_data(cfg, device)), train_files_(shard_files(train_pattern(cfg.run.data_path))),
        loader_(train_files_, rank_, world_, cfg.model.vocab_size),
        batches_(loader_, {cfg.train.train_batch_tokens, cfg.train.train_seq_len, grad_accum_}, device),
        val_batch_seqs_(std::max<std::int64_t>(1, cfg.train.val_batch_size / (world_ * grad_accum_) / cfg.train.train_seq_len)),
        model_(cfg.model, mopts_), swa_due_(swa_timing(cfg.averaging.swa_step_index)) {
    // Before any step: val_bpb counts bytes through the tokenizer, which must be the one that made the shards.
    const std::string skipped = check_tokenizer_unless_disabled(cfg.run.tokenizer_path, cfg.run.data_path, cfg.run.tokenizer_check);
    if (!skipped.empty()) log.line(skipped);
    if (!cfg.train.init_weights.empty()) {
      load_weights(model_, cfg.train.init_weights);
      log.line("init_weights:" + cfg.train.init_weights);
    }
    model_.set_qat_quantizers(qat_quantizers(model_, quant_options(cfg.export_, cfg.qat)));
    params_ = tensors_of(model_);
    opt_.emplace(model_, cfg.optim, ns_dtype_for(device),
                 MuonSharding{rank_, world_, [this](at::Tensor& flat) { dist_.all_reduce_sum(flat, "Muon update all-reduce"); }});
    sync_.emplace(dist, params_);
    train_step_.emplace(model_, *opt_, grad_accum_, &*sync_, step_recorder(cfg.runtime.cuda_graphs, device),
                        [this](const std::string& note) { log_.line(note); });
    log.line("model_params:" + std::to_string(model_.num_params()));
    log.line(format_block_plans(model_.plans()));
    for (const std::string& note : ignored_cuda_switches(cfg.runtime, device)) log.line(note);
    log.line("world_size:" + std::to_string(world_) + " grad_accum_steps:" + std::to_string(grad_accum_));
    if (const std::string note = schedule_note(cfg.schedule); !note.empty()) log.line(note);
    log.line("val_tokens:" + std::to_string(data_.val.numel() - 1) + " val_bytes_from:" + data_.byte_source +
             " train_shards:" + std::to_string(train_files_.size()) +
             " train_tokens:" + std::to_string(loader_.stream().total_tokens()) +
             (data_.subset_tokens > 0 ? " (EVAL_TOKENS_LIMIT: every score is of the first " +
                                            std::to_string(data_.subset_tokens) + " validation tokens, not the challenge score)"
                                      : ""));
  }

  // Real steps to warm kernels and the allocator, then every bit of state
  // (weights, optimiser state, data position) goes back to the start.
  void warm_up() {
    if (cfg_.train.warmup_steps <= 0) return;
    const auto weights0 = clone_all(params_);
    const auto state0 = clone_all(opt_->state());
    const auto position0 = batches_.position();
    for (std::int64_t i = 0; i < cfg_.train.warmup_steps; ++i) {
      // With depth recurrence the second half runs looped, so that shape is
      // warm too when the switch comes.
      model_.set_looped(2 * i >= cfg_.train.warmup_steps);
      log_.progress("warmup step " + std::to_string(i + 1) + "/" + std::to_string(cfg_.train.warmup_steps));
      run_step(i, 1.0);
    }
    model_.set_looped(false);
    copy_all(params_, weights0);
    copy_all(opt_->state(), state0);
    batches_.seek(position0);
    opt_->zero_grad();
    log_.line("warmup_steps:" + std::to_string(cfg_.train.warmup_steps) + " done, state restored");
  }

  // Continues from a checkpoint: every bit of state as it was after its step,
  // the schedule's clock included (the time between the checkpoint and the
  // crash is not counted).
  void restore(const TrainState& s) {
    if constexpr (!kHasCheckpoints) missing_component("CHECKPOINTS");
    try {
      copy_weights(model_, s.weights, "checkpoint '" + s.path + "'");
      restore_tensors(opt_->state(), s.optimizer, "optimiser state");
      if (s.swa_count > 0) {
        std::vector<at::Tensor> sum = clone_all(params_);  // on the device, in the weights' shapes
        restore_tensors(sum, s.swa_sum, "SWA sum");
        swa_ = Swa(std::move(sum), s.swa_count);
      }
      if (cfg_.averaging.ema_enabled) {
        ema_.emplace(params_, cfg_.averaging.ema_decay);
        restore_tensors(ema_->state(), s.ema, "EMA state");
      } else if (!s.ema.empty()) {
        throw std::runtime_error("it holds EMA state, but EMA_ENABLED=0");
      }
      batches_.seek(s.data);
    } catch (const std::exception& e) {
      throw CheckpointError("cannot resume from '" + s.path + "': " + e.what());
    }
    model_.set_qat(s.qat);
    model_.set_looped(s.looped);
    step_ = s.step;
    clock_ = AgreedClock(s.agreed_step, s.agreed_ms, s.first_step_ms);
    stop_after_ = s.stop_after;
    train_ms_ = s.train_ms;
    last_checkpoint_ms_ = clock_.agreed_ms();
    log_.line(strprintf("resumed from step %lld (%s) train_time:%.0fms", static_cast<long long>(step_), s.path.c_str(), train_ms_));
    log_.metric("resume", {{"step", double(step_)}, {"train_time_ms", train_ms_}});
  }

  // The training steps under the schedule, with validation, SWA/EMA
  // collection, QAT switch-on and the wall-clock stop. Within a step the host
  // does not wait for the GPU: what the ranks agree on after step k (summed
  // loss, summed elapsed time) travels to the host while step k+1 runs and is
  // used then, for step k's log line, the schedule's clock and the stop. All
  // of it is the same on every rank, so every rank takes the same learning
  // rate and stops after the same step. A stop signal agreed in a report
  // ends the loop after the step now done, without the final validation,
  // with a checkpoint of that step when checkpoints are on.
  // Returns the steps done, the training time, the last validation and the
  // stop signal (0: the run ran to its end).
  struct LoopResult {
    std::int64_t steps;
    double train_ms;
    EvalSums last_eval;
    int stop_signal;
  };
  LoopResult loop() {
    if (cfg_.averaging.ema_enabled && !ema_) ema_.emplace(params_, cfg_.averaging.ema_decay);
    EvalSums last_eval;
    synchronize(device_);
    t0_ = Clock::now();
    for (;;) {
      if (stop_signal_) {
        if (pending_) report(/*final=*/true);
        if (checkpoints_on() && checkpoint_step_ != step_) checkpoint();
        synchronize(device_);
        train_ms_ += ms_since(t0_);
        break;
      }
      const bool last = finished();
      if (last || (cfg_.train.val_loss_every > 0 && step_ % cfg_.train.val_loss_every == 0)) {
        if (pending_) report(/*final=*/last);
        synchronize(device_);
        train_ms_ += ms_since(t0_);  // validation time is not training time
        last_eval = validate(step_, train_ms_);
        t0_ = Clock::now();
      }
      if (last) break;
      step_once();
      if (checkpoint_due()) checkpoint();
    }
    if (!stop_signal_ && step_ < cfg_.schedule.iterations)
      log_.line(strprintf("stopping_early: wallclock_cap train_time:%.0fms step:%lld/%lld", train_ms_, static_cast<long long>(step_),
                          static_cast<long long>(cfg_.schedule.iterations)));
    if (epoch_after(step_) > 1) log_.line("data: " + std::to_string(epoch_after(step_)) + " epochs over the training shards");
    log_.line(peak_memory_report(device_));
    return {step_, train_ms_, last_eval, stop_signal_};
  }

  // Loads the EMA or the SWA mean (with the final weights when SWA_ADD_FINAL;
  // only of more than one snapshot) and returns the averaged weights'
  // evaluation; nothing when the run keeps its final weights.
  std::optional<EvalSums> average() {
    if (ema_) {
      log_.line("ema:applying decay " + strprintf("%.4f", cfg_.averaging.ema_decay));
      ema_->apply(params_);
    } else if (swa_.finish(params_, cfg_.averaging.swa_add_final)) {
      log_.line("swa:applying averaged " + std::to_string(swa_.count()) + " checkpoints");
    } else {
      if (swa_.count() == 1) log_.line("swa:kept the final weights (1 checkpoint collected; averaging needs 2 or more)");
      return std::nullopt;
    }
    const EvalSums e = standard_eval();
    log_.line(strprintf("final_averaged val_loss:%.4f val_bpb:%.4f", e.val_loss(), e.val_bpb()));
    return e;
  }

  // Checks that every rank holds the same weights; rank 0 saves them.
  // Returns the weights' path.
  std::string save() {
    require_finite_weights("the weights are not saved");
    dist_.check_in_sync(params_);
    if (world_ > 1) log_.line("ranks_in_sync: bit-identical weights on all " + std::to_string(world_) + " ranks");
    const std::string path = log_.dir() + "/model.safetensors";
    if (dist_.is_main()) {
      std::map<std::string, std::string> metadata = record_metadata(model_record(cfg_));
      metadata.insert({{"format", "pt"}, {"run_id", log_.run_id()}});
      save_safetensors(path, model_.parameters(), metadata);
      log_.line("saved weights: " + path);
    }
    return path;
  }

  // Prune, quantise, fit and pack (rank 0); then every rank reads the file
  // back into a fresh model and scores its share. The round-trip score is the result.
  struct Scores {
    EvalSums prequant, score, ttt;
    ExportResult exported;
    double eval_ms = 0;  // what the challenge times as evaluation: the sliding window and TTT
  };
  Scores export_and_score(const std::string& weights_path) {
    Scores s;
    if (cfg_.eval.prequant_eval) s.prequant = score_prequant(model_, cfg_.eval, data_, log_, dist_);
    const std::string artifact = log_.dir() + "/final_model.pgolf";
    if (world_ > 1)
      log_.line("export: rank 0 alone; the other ranks wait for it up to MAIN_PHASE_TIMEOUT_SECONDS=" +
                std::to_string(cfg_.runtime.main_phase_timeout_seconds));
    dist_.on_main("the export", [&] {
      try {
        s.exported = export_submission(model_, cfg_, artifact, log_);
      } catch (const FitError& e) {
        throw FitError(std::string(e.what()) + ". The trained weights are saved in " + weights_path +
                       ": after changing the configuration, `pgolf export --weights " + weights_path + "` exports them again");
      }
    }, main_phase_bound());
    s.exported.path = artifact;
    GPT restored(cfg_.model, mopts_);
    restored.set_looped(model_.looped());
    load_model_file(restored, artifact);
    const TrainingDataBan no_training_data("the final evaluation");
    const TimedScore sliding = score_artifact(restored, cfg_.eval, data_, log_, dist_);
    s.score = sliding.sums;
    s.eval_ms = sliding.ms;
    const auto ttt_start = Clock::now();
    if (cfg_.ttt.ttt_enabled) s.ttt = score_ttt(restored, ttt_options(cfg_), data_, log_, "final_ttt", dist_);
    s.eval_ms += ms_since(ttt_start);
    return s;
  }

  void log_stop(const TrainResult& r) {
    log_.metric("stop", {{"signal", double(r.stop_signal)}, {"step", double(r.steps)}, {"train_time_ms", r.train_time_ms}});
    log_.line(strprintf("stopped: %s after step:%lld/%lld train_time:%.0fms; weights saved to %s", stop_signal_name(r.stop_signal),
                        static_cast<long long>(r.steps), static_cast<long long>(cfg_.schedule.iterations), r.train_time_ms,
                        r.weights_path.c_str()));
  }

  void log_compliance(const TrainResult& r) {
    RunFacts facts;
    facts.total_bytes = r.exported.total();
    facts.budget_bytes = static_cast<std::uint64_t>(cfg_.export_.budget_bytes);
    facts.train_ms = r.train_time_ms;
    facts.calibration_ms = r.exported.calibration_ms;
    facts.eval_ms = r.eval_ms;
    facts.eval_budget_seconds = cfg_.eval.eval_budget_seconds;
    facts.ttt = cfg_.ttt.ttt_enabled;
    facts.subset_tokens = data_.subset_tokens;
    const std::vector<RuleCheck> checks = check_rules(facts);
    for (const std::string& line : compliance_lines(checks)) log_.line(line);
    std::vector<std::pair<std::string, std::string>> verdicts;
    for (const RuleCheck& c : checks) verdicts.emplace_back(c.rule, c.pass ? "pass" : "fail");
    log_.metric("compliance", verdicts);
  }

  void log_final(const TrainResult& r) {
    log_compliance(r);
    log_.metric("final", {{"steps", double(r.steps)}, {"train_time_ms", r.train_time_ms}, {"eval_ms", r.eval_ms},
                          {"val_loss", r.score.val_loss()}, {"val_bpb", r.score.val_bpb()},
                          {"artifact_bytes", double(r.exported.artifact_bytes)}, {"total_bytes", double(r.exported.total())},
                          {"subset_tokens", double(data_.subset_tokens)}});
  }

 private:
  std::chrono::seconds main_phase_bound() const { return std::chrono::seconds(cfg_.runtime.main_phase_timeout_seconds); }

  // The same on every rank (the weights are): a non-finite weight stops the
  // run before it is written anywhere.
  void require_finite_weights(const std::string& consequence) {
    for (const auto& p : model_.parameters())
      if (!at::isfinite(p.tensor).all().item<bool>())
        throw std::runtime_error("after step " + std::to_string(step_) + " parameter " + p.name +
                                 " holds non-finite values, so the run stops here; " + consequence +
                                 " (lower the learning rates MATRIX_LR, SCALAR_LR, TIED_EMBED_LR or GRAD_CLIP_NORM)");
  }

  at::Tensor run_step(std::int64_t step, double lr_mult) {
    return train_step_->run([this] { return batches_.next(); }, step, lr_mult);
  }

  // One optimiser step at the schedule's values, then SWA/EMA, then this
  // step's report sent on its way and the previous one read.
  void step_once() {
    const StepPlan plan = plan_step(cfg_, step_, clock_);
    const double mult = plan.lr_mult;
    if (!model_.qat() && plan.qat) {
      model_.set_qat(true);
      log_.line("qat:start step:" + std::to_string(step_));
    }
    if (!model_.looped() && plan.looped) {
      model_.set_looped(true);  // and for every evaluation after
      log_.line("loop:start step:" + std::to_string(step_) + " layers:" + format_value(cfg_.model.loop_layers) + " repeats:" +
                std::to_string(cfg_.model.loop_repeats));
    }
    at::Tensor loss = run_step(step_, mult);
    ++step_;
    note_epoch();
    if (step_ == 1) agree_first_step();
    if (cfg_.averaging.swa_enabled && !ema_ && mult < cfg_.averaging.swa_start_frac && swa_due_(step_, cfg_.averaging.swa_every)) {
      if (swa_.count() == 0) log_.line("swa:start step:" + std::to_string(step_));
      swa_.add(params_);
    }
    if (ema_) ema_->update(params_);
    const bool log = step_ <= 10 || step_ % cfg_.train.train_log_every == 0 || step_ == cfg_.schedule.iterations;
    // Every step reports: its loss is checked (report) and its time moves the agreed clock.
    StepReport now = start_report(loss, mult, log);
    if (pending_) report(/*final=*/false);
    pending_ = std::move(now);
    if (!log) log_.progress("step " + std::to_string(step_) + "/" + std::to_string(cfg_.schedule.iterations));
  }

  // The epoch of the stream that step_ steps have read into: every step
  // takes grad_accum micro-batches of (local + 1) tokens per rank from the
  // one stream all ranks share. The first wrap is logged (the shards are
  // then read again), and the count at the end.
  std::int64_t epoch_after(std::int64_t steps) const {
    const std::int64_t local = cfg_.train.train_batch_tokens / (world_ * grad_accum_);
    const auto read = static_cast<double>(steps) * static_cast<double>(grad_accum_ * world_ * (local + 1));
    return static_cast<std::int64_t>(std::ceil(read / static_cast<double>(loader_.stream().total_tokens())));
  }
  void note_epoch() {
    if (epoch_after(step_) > 1 && epoch_after(step_ - 1) <= 1)
      log_.line("data: the training stream wrapped at step " + std::to_string(step_) + ": the " +
                std::to_string(train_files_.size()) + " train shards hold " +
                std::to_string(loader_.stream().total_tokens()) + " tokens, fewer than the run reads, so they are read again");
  }

  bool capped() const { return cfg_.schedule.training_seconds() > 0; }
  bool finished() const {
    return run_finished(cfg_, step_, clock_) || (stop_after_ >= 0 && step_ >= stop_after_) || stop_signal_ != 0;
  }

  // The first step carries the start-up costs; the schedule leaves it out of
  // its average, so its time is agreed at once (the only wait in the loop).
  void agree_first_step() {
    synchronize(device_);
    at::Tensor t = at::full({}, train_ms_ + ms_since(t0_), at::TensorOptions().dtype(at::kDouble).device(device_));
    dist_.all_reduce_sum(t, "first step time");
    clock_.agree_first_step(t.item<double>() / world_);
    log_.line(strprintf("first_step_ms:%.0f since_launch_ms:%.0f", clock_.first_step_ms(), ms_since_process_start()));
  }

  // A step's numbers on their way to the host: [sum of losses, sum of the
  // ranks' elapsed training time, then per stop signal the number of ranks
  // that hold it].
  struct StepReport {
    std::int64_t step;
    double lr_mult, local_ms;
    bool log;
    AsyncReadback sums;
  };

  StepReport start_report(const at::Tensor& loss, double mult, bool log) {
    const double local_ms = train_ms_ + ms_since(t0_);
    const at::TensorOptions as_double = loss.options().dtype(at::kDouble);
    std::vector<at::Tensor> values{loss.detach().to(at::kDouble), at::full({}, local_ms, as_double)};
    const int held = signals_ ? signals_->pending() : 0;
    for (int sig : StopSignals::kSignals) values.push_back(at::full({}, sig == held ? 1.0 : 0.0, as_double));
    at::Tensor v = at::stack(values);
    dist_.all_reduce_sum(v, "step report");
    return {step_, mult, local_ms, log, AsyncReadback(v)};
  }

  // Reads the pending report: the schedule's clock moves to its step, its log
  // line is written (always for the last step), and once the agreed time
  // reaches the cap, or once a rank holds a stop signal, every rank stops
  // after the step now done.
  void report(bool final) {
    StepReport r = std::move(*pending_);
    pending_.reset();
    const std::vector<double> sums = r.sums.values();
    const double loss = sums[0] / world_;
    clock_.agree(r.step, sums[1] / world_);
    if (r.log || final || !std::isfinite(loss)) {
      log_.line(strprintf("step:%lld/%lld train_loss:%.4f train_time:%.0fms step_avg:%.2fms", static_cast<long long>(r.step),
                          static_cast<long long>(cfg_.schedule.iterations), loss, r.local_ms, r.local_ms / r.step));
      log_.metric("train", {{"step", double(r.step)}, {"train_loss", loss}, {"lr_mult", r.lr_mult}, {"train_time_ms", r.local_ms}});
    }
    // The same sum on every rank: all stop here together, before a checkpoint
    // (checkpoint() reads the pending report first) or the weights of this
    // state are written.
    if (!std::isfinite(loss))
      throw std::runtime_error(strprintf("step:%lld train_loss:%g", static_cast<long long>(r.step), loss) +
                               " is not finite, so the run stops here; nothing of this state is saved (lower the "
                               "learning rates MATRIX_LR, SCALAR_LR, TIED_EMBED_LR or GRAD_CLIP_NORM, or resume from the "
                               "last checkpoint with other values)");
    if (capped() && stop_after_ < 0 && clock_.agreed_ms() >= cfg_.schedule.training_seconds() * 1000.0) stop_after_ = step_;
    // The signal all ranks stop for is the largest any rank holds: the report
    // sums, per signal in ascending order, the ranks that hold it, so it is
    // the last signal with a count above 0. The first one agreed stays.
    int agreed = 0;
    for (std::size_t i = 0; i < StopSignals::kSignals.size(); ++i)
      if (sums[2 + i] > 0) agreed = StopSignals::kSignals[i];
    if (stop_signal_ == 0) stop_signal_ = agreed;
  }

  // Every CHECKPOINT_EVERY steps, or once CHECKPOINT_MINUTES of the agreed
  // clock have passed since the last one (the same on every rank); not after
  // the last step, whose weights the run saves anyway.
  bool checkpoints_on() const { return cfg_.train.checkpoint_every > 0 || cfg_.train.checkpoint_minutes > 0; }
  bool checkpoint_due() const {
    if (finished()) return false;
    if (cfg_.train.checkpoint_every > 0 && step_ % cfg_.train.checkpoint_every == 0) return true;
    return cfg_.train.checkpoint_minutes > 0 && clock_.agreed_ms() - last_checkpoint_ms_ >= cfg_.train.checkpoint_minutes * 60e3;
  }

  // The pending report is read first, so that the schedule's clock is that of
  // the step just done; then the state goes to rank 0, which writes it: each
  // rank's Muon buffers go to rank 0's copies of them (which it never reads).
  // Writing is not training time, on any rank.
  void checkpoint() {
    if (pending_) report(/*final=*/false);
    require_finite_weights("no checkpoint of this state is written");
    synchronize(device_);
    train_ms_ += ms_since(t0_);
    const auto t = Clock::now();
    TrainState s = state();
    dist_.gather_to_main(s.optimizer, opt_->state_owners(), "checkpoint: optimiser state");
    const std::string path = checkpoint_path(log_.dir());
    dist_.on_main("the checkpoint write", [&] {  // the others wait here, not in the next step's training time
      if (inputs_.empty()) inputs_ = input_identity(cfg_);  // read once, at the first checkpoint
      s.inputs = inputs_;
      if constexpr (kHasCheckpoints)
        save_checkpoint(path, s);
      else
        missing_component("CHECKPOINTS");
    }, main_phase_bound());
    log_.line(strprintf("checkpoint: step:%lld %s write_time:%.0fms", static_cast<long long>(step_), path.c_str(), ms_since(t)));
    checkpoint_step_ = step_;
    last_checkpoint_ms_ = clock_.agreed_ms();
    t0_ = Clock::now();
  }

  TrainState state() const {
    TrainState s;
    s.step = step_;
    s.agreed_step = clock_.agreed_step();
    s.stop_after = stop_after_;
    s.train_ms = train_ms_;
    s.agreed_ms = clock_.agreed_ms();
    s.first_step_ms = clock_.first_step_ms();
    s.qat = model_.qat();
    s.looped = model_.looped();
    s.data = batches_.position();
    s.weights = model_.parameters();
    s.optimizer = opt_->state();
    s.swa_sum = swa_.sum();
    s.swa_count = swa_.count();
    if (ema_) s.ema = ema_->state();
    s.world_size = world_;
    s.device = device_.is_cuda() ? "cuda" : "cpu";
    s.config = config_values(cfg_);
    return s;
  }

  EvalSums standard_eval() {
    return all_reduce(evaluate_standard(model_, data_.val, data_.bytes, cfg_.train.train_seq_len, val_batch_seqs_, rank_, world_),
                      dist_, device_);
  }

  EvalSums validate(std::int64_t step, double train_ms) {
    auto t = Clock::now();
    log_.progress("validating...");
    EvalSums e = standard_eval();
    log_.line(strprintf("step:%lld/%lld val_loss:%.4f val_bpb:%.4f train_time:%.0fms step_avg:%.2fms eval_time:%.0fms",
                        static_cast<long long>(step), static_cast<long long>(cfg_.schedule.iterations), e.val_loss(), e.val_bpb(),
                        train_ms, train_ms / std::max<std::int64_t>(step, 1), ms_since(t)));
    log_.metric("val", {{"step", double(step)}, {"val_loss", e.val_loss()}, {"val_bpb", e.val_bpb()}, {"train_time_ms", train_ms}});
    return e;
  }

  const Config& cfg_;
  RunLog& log_;
  Dist& dist_;
  const StopSignals* signals_;  // nullptr: no stop signals
  const at::Device device_;
  const ModelOptions mopts_;
  const int world_, rank_;
  const std::int64_t grad_accum_;
  const ScoringData data_;
  const std::vector<std::string> train_files_;
  DistributedTokenLoader loader_;
  BatchPrefetcher batches_;
  const std::int64_t val_batch_seqs_;
  GPT model_;
  std::vector<at::Tensor> params_;
  std::optional<Optimizers> opt_;
  std::optional<GradientSync> sync_;
  std::optional<TrainStep> train_step_;
  Swa swa_;
  const SwaTiming swa_due_;
  std::optional<Ema> ema_;
  // The loop's clock and position: steps done, training time so far (without
  // validation) and the running stretch since t0_, the agreed clock, and the
  // step after which every rank stops (-1: none yet).
  std::int64_t step_ = 0, stop_after_ = -1;
  double train_ms_ = 0, last_checkpoint_ms_ = 0;
  AgreedClock clock_;
  Clock::time_point t0_;
  std::optional<StepReport> pending_;
  std::map<std::string, std::string> inputs_;  // the data and tokenizer by content, for checkpoints
  int stop_signal_ = 0;                 // the stop signal all ranks agreed on (0: none)
  std::int64_t checkpoint_step_ = -1;  // the step of the last checkpoint written (-1: none)
};

}  // namespace

TrainResult train(const Config& given, RunLog& log, Dist& dist, const at::Device& device, const TrainState* resume,
                  const StopSignals* signals) {
  Config cfg = given;  // built in code rather than by load_config: its derived defaults too
  fill_derived(cfg);
  Trainer t(cfg, log, dist, device, signals);
  t.warm_up();
  if (resume) t.restore(*resume);
  const auto [steps, train_ms, last_eval, stop_signal] = t.loop();
  if (stop_signal) {  // the weights of the step done, neither averaged nor exported
    const TrainResult r{steps, train_ms, last_eval, t.save(), {}, {}, {}, {}, stop_signal};
    t.log_stop(r);
    return r;
  }
  const std::optional<EvalSums> averaged = t.average();
  const std::string weights_path = t.save();
  const auto [prequant, score, ttt, exported, eval_ms] = t.export_and_score(weights_path);
  const TrainResult r{steps, train_ms, averaged.value_or(last_eval), weights_path, prequant, exported, score, ttt, 0, eval_ms};
  t.log_final(r);
  return r;
}

}  // namespace pgolf
