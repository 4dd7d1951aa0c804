// Training of docs/MODEL.md ("The optimiser") in one process: warm-up with full restore, the LR
// schedule (iteration or wall-clock warm-down), Muon + AdamW steps, periodic
// validation, SWA/EMA, late QAT, checkpoints and resuming from one; saves the
// final fp32 weights, then exports and scores the artifact (docs/MODEL.md ("The export")).
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>

#include "pgolf/train/checkpoint.h"
#include "pgolf/train/clock.h"
#include "pgolf/data/data.h"
#include "pgolf/dist/dist.h"
#include "pgolf/eval/eval.h"
#include "pgolf/model/model.h"
#include "pgolf/optim/optim.h"
#include "pgolf/optim/schedule.h"
#include "pgolf/core/run.h"
#include "pgolf/core/signals.h"
#include "pgolf/train/step.h"
#include "pgolf/export/submission.h"
#include "pgolf/train/transfer.h"

namespace pgolf {

// With QAT_ENABLED, QAT starts once elapsed time reaches QAT_START_FRAC of the
// cap, or, without a cap, once step reaches QAT_START_FRAC of ITERATIONS
// (QAT_START_FRAC=0: from the first step).
bool qat_active(const Config& cfg, std::int64_t step, double elapsed_ms);
// With LOOP_LAYERS, depth recurrence starts the same way at LOOP_START_FRAC.
bool loop_active(const Config& cfg, std::int64_t step, double elapsed_ms);

// What the step after `step` steps done runs with, by the agreed clock's
// time then (clock.elapsed(step)) and its step time.
struct StepPlan {
  double lr_mult;
  bool qat, looped;
};
StepPlan plan_step(const Config& cfg, std::int64_t step, const AgreedClock& clock);
// Whether the run ends after `steps_done` steps: ITERATIONS are done, or under
// a cap the agreed clock's time then has reached MAX_WALLCLOCK_SECONDS (the
// step that reaches the cap is the last, as in the seeds).
bool run_finished(const Config& cfg, std::int64_t steps_done, const AgreedClock& clock);

struct TrainResult {
  std::int64_t steps = 0;
  double train_time_ms = 0;
  EvalSums final_eval;  // standard evaluation of the final (averaged) weights
  std::string weights_path;
  EvalSums prequant;   // sliding evaluation of the fp32 weights (if PREQUANT_EVAL)
  ExportResult exported;
  EvalSums score;       // sliding evaluation of the artifact read back from disk: the score
  EvalSums ttt;        // with TTT_ENABLED: the artifact scored with test-time training
  int stop_signal = 0;  // the signal that stopped the run early (0: it ran to its end)
  double eval_ms = 0;    // the final evaluation as the challenge times it: sliding window and TTT
};

// The whole run of this rank on `device`, logging to `log` (README (a training run) lines).
// Ranks share the token stream by slices, average gradients, split the
// Newton-Schulz work and the evaluation windows; rank 0 writes the weights
// and the artifact, which every rank then reads back and scores. With
// CHECKPOINT_EVERY or CHECKPOINT_MINUTES rank 0 also writes the training
// state (checkpoint.h) into the run folder. Given `resume` (a checkpoint that
// check_resumable accepted), the run continues from it after the warm-up.
// Given `signals`, a SIGINT or SIGTERM that any rank holds stops every rank
// after the same step: a checkpoint of it (when checkpoints are on), the
// weights saved as they are (no averaging), a `stopped:` line and a "stop"
// event; no export, no scoring; the result's stop_signal names the signal.
TrainResult train(const Config& cfg, RunLog& log, Dist& dist, const at::Device& device, const TrainState* resume = nullptr,
                  const StopSignals* signals = nullptr);
// One process on select_device(DEVICE).
TrainResult train(const Config& cfg, RunLog& log, const TrainState* resume = nullptr, const StopSignals* signals = nullptr);

}  // namespace pgolf
