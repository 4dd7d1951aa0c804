// One training step (docs/MODEL.md ("The optimiser")): forward and backward of
// the micro-batches, the gradients averaged over ranks, clipping and the
// optimisers. Run eagerly, or (CUDA_GRAPHS=1 on CUDA) recorded once into a
// CUDA graph per model mode and replayed, so that the host launches one graph
// per step instead of thousands of kernels.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/dist/dist.h"
#include "pgolf/model/model.h"
#include "pgolf/optim/optim.h"

namespace pgolf {

// Inputs and targets [rows, seq_len], int64 on the device.
using MicroBatch = std::pair<at::Tensor, at::Tensor>;
// Hands out the next micro-batch (BatchPrefetcher::next, or fixed tensors).
using NextBatch = std::function<MicroBatch()>;

// Records queued device work once and replays it. On CUDA: CUDA graphs
// sharing one memory pool, captured on a stream of their own
// (cuda_graph_recorder); tests use a recorder of their own.
class GraphRecorder {
 public:
  virtual ~GraphRecorder() = default;
  // Runs `f` eagerly on the stream captures use (ordered after the work
  // queued so far and before the work queued next), so that what it sets up
  // lazily (library workspaces, NCCL's streams, allocator blocks) exists
  // before a capture.
  virtual void warm(const std::function<void()>& f) = 0;
  // Records what `body` queues, without running it; returns the graph's
  // index. Throws where capture is impossible (a host synchronisation or an
  // unsupported call inside); the recorder is then not to be used again.
  virtual std::size_t capture(const std::function<void()>& body) = 0;
  // Queues graph `index` on the current stream.
  virtual void replay(std::size_t index) = 0;
};

// CUDA graphs on `device` (a CUDA device). Throws std::runtime_error in a
// build without the CUDA path.
std::unique_ptr<GraphRecorder> cuda_graph_recorder(const at::Device& device);

// Whether training steps are captured: CUDA_GRAPHS on CUDA.
bool use_cuda_graphs(bool requested, const at::Device& device);
// The recorder a TrainStep on `device` gets: CUDA graphs where
// use_cuda_graphs, else none (eager steps).
std::unique_ptr<GraphRecorder> step_recorder(bool cuda_graphs, const at::Device& device);

// The phases of an eager step, for whoever times them (pgolf bench).
enum class StepPhase { Forward, Backward, Optimizer };
// Called as (phase, true) before and (phase, false) after each phase of an
// eager step: forward and backward once per micro-batch, the optimisers once.
using PhaseObserver = std::function<void(StepPhase phase, bool begins)>;

class TrainStep {
 public:
  // `sync`: gradient averaging (none for one process). `recorder` null:
  // every step runs eagerly. `note` receives one line per capture and the
  // reason when a capture fails.
  TrainStep(GPT& model, Optimizers& opt, std::int64_t grad_accum, GradientSync* sync,
            std::unique_ptr<GraphRecorder> recorder = nullptr, std::function<void(const std::string&)> note = {});
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // One optimiser step at the schedule's values: grad_accum micro-batches
  // from `next`, loss/grad_accum backward each, the gradients averaged over
  // ranks during the last one, then Optimizers::apply. Returns the mean
  // micro-batch loss (0-d, on the device; the host does not wait).
  //
  // With a recorder the micro-batches are first copied into fixed input
  // buffers. The first step in each model mode (QAT on or off, looped or
  // not) runs eagerly on the recorder's stream and then that mode's step is
  // captured, reading only those buffers, the weights, the optimiser state
  // and the schedule's device values (Optimizers::set_schedule); the later
  // steps of the mode replay it. A failed capture is reported through `note`
  // and every step from then on runs eagerly.
  at::Tensor run(const NextBatch& next, std::int64_t step, double lr_mult);
  // Whether steps are (still) captured.
  bool graphs() const { return recorder_ != nullptr; }
  // Observes the phases of the eager steps from now on (empty: none).
  void observe_phases(PhaseObserver observer);
  // Modes captured so far.
  std::size_t captured_modes() const { return graphs_.size(); }

 private:
  struct Captured {
    std::size_t graph;
    at::Tensor loss;  // the graph's output
  };
  // Zeroes the gradients, runs the micro-batches `micro(m)` and the optimisers.
  at::Tensor accumulate(const std::function<MicroBatch(std::int64_t)>& micro);
  at::Tensor from_inputs();  // accumulate over inputs_
  void fill_inputs(const NextBatch& next);
  void capture(std::pair<bool, bool> mode);

  GPT& model_;
  Optimizers& opt_;
  const std::int64_t grad_accum_;
  GradientSync* sync_;
  std::unique_ptr<GraphRecorder> recorder_;
  std::function<void(const std::string&)> note_;
  PhaseObserver phases_ = [](StepPhase, bool) {};
  std::vector<MicroBatch> inputs_;                  // what captured steps read
  std::map<std::pair<bool, bool>, Captured> graphs_;  // by (qat, looped)
};

}  // namespace pgolf
