#include "pgolf/train/step.h"

#include "pgolf/config/components.h"
#include "pgolf/core/runtime.h"

namespace pgolf {

bool use_cuda_graphs(bool requested, const at::Device& device) { return requested && device.is_cuda(); }

std::unique_ptr<GraphRecorder> step_recorder(bool cuda_graphs, const at::Device& device) {
  if (!use_cuda_graphs(cuda_graphs, device)) return nullptr;
  if constexpr (kHasCudaGraphs)
    return cuda_graph_recorder(device);
  else
    missing_component("CUDA_GRAPHS");
}

TrainStep::TrainStep(GPT& model, Optimizers& opt, std::int64_t grad_accum, GradientSync* sync,
                     std::unique_ptr<GraphRecorder> recorder, std::function<void(const std::string&)> note)
    : model_(model), opt_(opt), grad_accum_(grad_accum), sync_(sync), recorder_(std::move(recorder)), note_(std::move(note)) {}

TrainStep::~TrainStep() = default;

at::Tensor TrainStep::accumulate(const std::function<MicroBatch(std::int64_t)>& micro) {
  opt_.zero_grad();
  at::Tensor total;
  for (std::int64_t m = 0; m < grad_accum_; ++m) {
    auto [x, y] = micro(m);
    phases_(StepPhase::Forward, true);
    at::Tensor loss = model_.training_loss(x, y);
    phases_(StepPhase::Forward, false);
    const bool last = m + 1 == grad_accum_;
    if (last && sync_) sync_->arm();
    phases_(StepPhase::Backward, true);
    (loss / static_cast<double>(grad_accum_)).backward();
    phases_(StepPhase::Backward, false);
    if (last && sync_) sync_->finish();
    total = m == 0 ? loss.detach() : total + loss.detach();
  }
  phases_(StepPhase::Optimizer, true);
  opt_.apply();
  phases_(StepPhase::Optimizer, false);
  return total / static_cast<double>(grad_accum_);
}

void TrainStep::observe_phases(PhaseObserver observer) {
  phases_ = observer ? std::move(observer) : [](StepPhase, bool) {};
}

at::Tensor TrainStep::from_inputs() {
  return accumulate([this](std::int64_t m) { return inputs_[static_cast<std::size_t>(m)]; });
}

void TrainStep::fill_inputs(const NextBatch& next) {
  for (std::int64_t m = 0; m < grad_accum_; ++m) {
    auto [x, y] = next();
    if (inputs_.size() < static_cast<std::size_t>(grad_accum_)) {
      inputs_.emplace_back(x.clone(), y.clone());
      continue;
    }
    auto& [sx, sy] = inputs_[static_cast<std::size_t>(m)];
    TORCH_CHECK(sx.sizes() == x.sizes() && sy.sizes() == y.sizes(), "captured training step: micro-batch ", m,
                " has shape ", x.sizes(), ", the captured step's inputs ", sx.sizes());
    sx.copy_(x);
    sy.copy_(y);
  }
}

at::Tensor TrainStep::run(const NextBatch& next, std::int64_t step, double lr_mult) {
  opt_.set_schedule(step, lr_mult);
  if (!recorder_) return accumulate([&](std::int64_t) { return next(); });
  fill_inputs(next);
  const std::pair<bool, bool> mode{model_.qat(), model_.looped()};
  if (auto it = graphs_.find(mode); it != graphs_.end()) {
    recorder_->replay(it->second.graph);
    return it->second.loss.clone();
  }
  at::Tensor loss;
  recorder_->warm([&] { loss = from_inputs(); });
  capture(mode);
  return loss;
}

// Capture runs nothing: the gradients it leaves in .grad and the loss it
// stores are the graph's buffers, which each replay fills.
void TrainStep::capture(std::pair<bool, bool> mode) {
  const std::string what = std::string("qat:") + (mode.first ? "on" : "off") + " looped:" + (mode.second ? "on" : "off");
  try {
    const std::size_t graph = recorder_->capture([this, mode] { graphs_[mode].loss = from_inputs(); });
    graphs_[mode].graph = graph;
    if (note_) note_("cuda_graphs: captured the training step (" + what + ")");
  } catch (const std::exception& e) {
    recorder_.reset();
    graphs_.clear();
    opt_.zero_grad();
    if (sync_) sync_->reset();
    if (note_)
      note_("cuda_graphs: capturing the training step (" + what + ") failed, every step runs eagerly from here: " +
            error_message(e));
  }
}

}  // namespace pgolf
