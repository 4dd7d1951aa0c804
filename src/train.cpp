#include "pgolf/train.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "pgolf/averaging.h"
#include "pgolf/runtime.h"
#include "pgolf/weights.h"

namespace pgolf {

double lr_multiplier(const Config& cfg, std::int64_t step, double elapsed_ms, double step_ms) {
  if (cfg.warmdown_iters <= 0) return 1.0;
  const double W = static_cast<double>(cfg.warmdown_iters);
  if (cfg.max_wallclock_seconds <= 0) {
    const std::int64_t start = std::max<std::int64_t>(cfg.iterations - cfg.warmdown_iters, 0);
    if (step < start || step >= cfg.iterations) return 1.0;
    return std::max(static_cast<double>(cfg.iterations - step) / W, 0.0);
  }
  const double warmdown_ms = W * step_ms;
  const double remaining_ms = std::max(cfg.max_wallclock_seconds * 1000.0 - elapsed_ms, 0.0);
  return remaining_ms <= warmdown_ms ? remaining_ms / std::max(warmdown_ms, 1e-9) : 1.0;
}

bool qat_active(const Config& cfg, std::int64_t step, double elapsed_ms) {
  if (!cfg.qat_enabled) return false;
  if (cfg.max_wallclock_seconds > 0) return elapsed_ms >= cfg.qat_start_frac * cfg.max_wallclock_seconds * 1000.0;
  return static_cast<double>(step) >= cfg.qat_start_frac * static_cast<double>(cfg.iterations);
}

double schedule_step_ms(std::int64_t steps_done, double elapsed_ms, double first_step_ms) {
  if (steps_done >= 2) return (elapsed_ms - first_step_ms) / static_cast<double>(steps_done - 1);
  return elapsed_ms / static_cast<double>(std::max<std::int64_t>(steps_done, 1));
}

namespace {

std::pair<at::Tensor, at::Tensor> batch_tensors(Batch& b, at::Device device) {
  auto copy = [&](std::vector<std::int64_t>& v) {
    return at::from_blob(v.data(), {b.rows, b.seq_len}, at::kLong).to(device, /*non_blocking=*/false, /*copy=*/true);
  };
  return {copy(b.inputs), copy(b.targets)};
}

std::vector<at::Tensor> clone_all(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

void copy_all(const std::vector<at::Tensor>& dst, const std::vector<at::Tensor>& src) {
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < dst.size(); ++i) dst[i].detach().copy_(src[i]);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

at::Tensor train_step(GPT& model, Optimizers& opt, DistributedTokenLoader& loader, const Config& cfg,
                      std::int64_t grad_accum, std::int64_t step, double lr_mult, GradientSync* sync) {
  opt.zero_grad();
  at::Tensor total;
  for (std::int64_t micro = 0; micro < grad_accum; ++micro) {
    Batch b = loader.next_batch(cfg.train_batch_tokens, cfg.train_seq_len, grad_accum);
    auto [x, y] = batch_tensors(b, model.options().device);
    at::Tensor loss = model.loss(x, y);
    const bool last = micro + 1 == grad_accum;
    if (last && sync) sync->arm();
    (loss / static_cast<double>(grad_accum)).backward();
    if (last && sync) sync->finish();
    total = micro == 0 ? loss.detach() : total + loss.detach();
  }
  opt.step(step, lr_mult);
  return total / static_cast<double>(grad_accum);
}

TrainResult train(const Config& cfg, RunLog& log) {
  Dist single;
  return train(cfg, log, single, select_device(cfg.device));
}

TrainResult train(const Config& cfg, RunLog& log, Dist& dist, const at::Device& device) {
  using Clock = std::chrono::steady_clock;

  const ModelOptions mopts = model_options_for(device);
  const int world_size = dist.world_size(), rank = dist.rank();
  const std::int64_t grad_accum = grad_accum_steps(world_size);

  const ScoringData data = load_scoring_data(cfg, device);
  const at::Tensor& val = data.val;
  const DeviceLuts& luts = data.luts;
  const std::vector<std::string> train_files = shard_files(train_pattern(cfg.data_path));
  DistributedTokenLoader loader(train_files, rank, world_size);
  const std::int64_t val_batch_seqs =
      std::max<std::int64_t>(1, cfg.val_batch_size / (world_size * grad_accum) / cfg.train_seq_len);

  GPT model(cfg, mopts);
  if (!cfg.init_weights.empty()) {
    load_weights(model, cfg.init_weights);
    log.line("init_weights:" + cfg.init_weights);
  }
  std::vector<at::Tensor> params;
  for (const auto& p : model.parameters()) params.push_back(p.tensor);
  Optimizers opt(model, cfg, ns_dtype_for(device),
                 {rank, world_size, [&](at::Tensor& flat) { dist.all_reduce_sum(flat, "Muon update all-reduce"); }});
  GradientSync sync(dist, params);
  log.line("model_params:" + std::to_string(model.num_params()));
  log.line("world_size:" + std::to_string(world_size) + " grad_accum_steps:" + std::to_string(grad_accum));
  log.line("val_tokens:" + std::to_string(val.numel() - 1) + " train_shards:" + std::to_string(train_files.size()));

  auto validate = [&](std::int64_t step, double train_ms) {
    auto t = Clock::now();
    log.progress("validating...");
    EvalSums e = all_reduce(evaluate_standard(model, val, luts, cfg.train_seq_len, val_batch_seqs, rank, world_size),
                            dist, device);
    log.line("step:" + std::to_string(step) + "/" + std::to_string(cfg.iterations) + fmt(" val_loss:%.4f", e.val_loss()) +
             fmt(" val_bpb:%.4f", e.val_bpb()) + fmt(" train_time:%.0fms", train_ms) +
             fmt(" step_avg:%.2fms", train_ms / std::max<std::int64_t>(step, 1)) + fmt(" eval_time:%.0fms", ms_since(t)));
    log.metric("val", {{"step", double(step)}, {"val_loss", e.val_loss()}, {"val_bpb", e.val_bpb()}, {"train_time_ms", train_ms}});
    return e;
  };

  // Warm-up: real steps to warm kernels and the allocator, then every bit of
  // state (weights, optimiser state, data position) goes back to the start.
  if (cfg.warmup_steps > 0) {
    const auto weights0 = clone_all(params);
    const auto state0 = clone_all(opt.state());
    const auto position0 = loader.stream().position();
    for (std::int64_t i = 0; i < cfg.warmup_steps; ++i) {
      log.progress("warmup step " + std::to_string(i + 1) + "/" + std::to_string(cfg.warmup_steps));
      train_step(model, opt, loader, cfg, grad_accum, i, 1.0, &sync);
    }
    copy_all(params, weights0);
    copy_all(opt.state(), state0);
    loader.stream().seek(position0);
    opt.zero_grad();
    log.line("warmup_steps:" + std::to_string(cfg.warmup_steps) + " done, state restored");
  }

  Swa swa;
  std::optional<Ema> ema;
  if (cfg.ema_enabled) ema.emplace(params, cfg.ema_decay);
  const double cap_ms = cfg.max_wallclock_seconds * 1000.0;
  double train_ms = 0, first_step_ms = 0;
  std::int64_t step = 0, stop_after = -1;
  EvalSums final_eval;
  synchronize(device);
  auto t0 = Clock::now();
  for (;;) {
    const bool last = step == cfg.iterations || (stop_after >= 0 && step >= stop_after);
    if (last || (cfg.val_loss_every > 0 && step % cfg.val_loss_every == 0)) {
      synchronize(device);
      train_ms += ms_since(t0);  // validation time is not training time
      final_eval = validate(step, train_ms);
      t0 = Clock::now();
    }
    if (last) {
      if (stop_after >= 0 && step < cfg.iterations)
        log.line(fmt("stopping_early: wallclock_cap train_time:%.0fms", train_ms) + " step:" + std::to_string(step) +
                 "/" + std::to_string(cfg.iterations));
      break;
    }
    const double elapsed = train_ms + ms_since(t0);
    const double mult = lr_multiplier(cfg, step, elapsed, schedule_step_ms(step, elapsed, first_step_ms));
    if (!model.qat() && qat_active(cfg, step, elapsed)) {
      model.set_qat(true);
      log.line("qat:start step:" + std::to_string(step));
    }
    at::Tensor loss = train_step(model, opt, loader, cfg, grad_accum, step, mult, &sync);
    ++step;
    if (step == 1) {
      synchronize(device);
      first_step_ms = train_ms + ms_since(t0);
    }
    const double approx_ms = train_ms + ms_since(t0);
    if (cfg.swa_enabled && !ema && mult < cfg.swa_start_frac && step % cfg.swa_every == 0) {
      if (swa.count() == 0) log.line("swa:start step:" + std::to_string(step));
      swa.add(params);
    }
    if (ema) ema->update(params);
    if (step <= 10 || step % cfg.train_log_every == 0 || stop_after >= 0) {
      dist.all_reduce_sum(loss, "train loss");  // every rank logs on the same steps
      const double l = loss.item<double>() / world_size;
      log.line("step:" + std::to_string(step) + "/" + std::to_string(cfg.iterations) + fmt(" train_loss:%.4f", l) +
               fmt(" train_time:%.0fms", approx_ms) + fmt(" step_avg:%.2fms", approx_ms / step));
      log.metric("train", {{"step", double(step)}, {"train_loss", l}, {"lr_mult", mult}, {"train_time_ms", approx_ms}});
    } else {
      log.progress("step " + std::to_string(step) + "/" + std::to_string(cfg.iterations));
    }
    if (stop_after < 0 && cap_ms > 0) {
      // Every rank stops after the same step: the first at which any rank reached the cap.
      at::Tensor reached = at::full({}, approx_ms >= cap_ms ? 1.0 : 0.0, at::TensorOptions().device(device));
      dist.all_reduce_max(reached, "wall-clock stop agreement");
      if (reached.item<double>() > 0) stop_after = step;
    }
  }
  log.line(peak_memory_report(device));

  const bool averaged = ema || swa.count() > 0;
  if (ema) {
    log.line("ema:applying decay " + fmt("%.4f", cfg.ema_decay));
    ema->apply(params);
  } else if (averaged) {
    if (cfg.swa_add_final) swa.add(params);  // #76: the final weights join the average
    log.line("swa:applying averaged " + std::to_string(swa.count()) + " checkpoints");
    swa.apply(params);
  }
  if (averaged) {
    final_eval = all_reduce(evaluate_standard(model, val, luts, cfg.train_seq_len, val_batch_seqs, rank, world_size),
                            dist, device);
    log.line(fmt("final_averaged val_loss:%.4f", final_eval.val_loss()) + fmt(" val_bpb:%.4f", final_eval.val_bpb()));
  }
  TrainResult result;
  result.steps = step;
  result.train_time_ms = train_ms;
  result.final_eval = final_eval;
  dist.check_in_sync(params);
  if (world_size > 1) log.line("ranks_in_sync: bit-identical weights on all " + std::to_string(world_size) + " ranks");
  result.weights_path = log.dir() + "/model.safetensors";
  if (dist.is_main()) {
    save_safetensors(result.weights_path, model.parameters(), {{"format", "pt"}, {"run_id", log.run_id()}});
    log.line("saved weights: " + result.weights_path);
  }

  // SPEC §5: prune, quantise, pack (rank 0); then every rank reads the file
  // back into a fresh model and scores its share. The round-trip score is the result.
  if (cfg.prequant_eval) result.prequant = score_sliding(model, cfg, data, log, "final_prequant_sliding", false, dist);
  const std::string artifact = log.dir() + "/final_model.pgolf";
  if (dist.is_main()) result.exported = export_submission(model, cfg, artifact, log);
  dist.barrier("artifact written by rank 0");
  result.exported.path = artifact;
  GPT restored(cfg, mopts);
  load_model_file(restored, artifact);
  result.roundtrip = score_sliding(restored, cfg, data, log, "final_int8_zlib_roundtrip", true, dist);
  log.metric("final", {{"steps", double(step)}, {"train_time_ms", train_ms}, {"val_loss", result.roundtrip.val_loss()},
                       {"val_bpb", result.roundtrip.val_bpb()}, {"artifact_bytes", double(result.exported.artifact_bytes)},
                       {"total_bytes", double(result.exported.total())}});
  return result;
}

}  // namespace pgolf
