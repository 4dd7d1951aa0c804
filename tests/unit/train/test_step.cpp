// TrainStep: steps through a recorder against eager steps. On the CPU the
// recorder keeps each captured body without running it and runs it on each
// replay, as a CUDA graph runs on the device what its capture recorded; the
// CUDA recorder itself is tested in test_cuda.cpp.
#include "pgolf/train/step.h"

#include <stdexcept>

#include "helpers.h"
#include "pgolf/core/runtime.h"

namespace pgolf {
namespace {

// What a recorder was asked to do; kept by the test, since TrainStep drops
// its recorder after a failed capture.
struct Calls {
  int warmed = 0, replayed = 0;
};

class RerunRecorder : public GraphRecorder {
 public:
  RerunRecorder(Calls& calls, bool fail) : calls_(calls), fail_(fail) {}
  void warm(const std::function<void()>& f) override {
    ++calls_.warmed;
    f();
  }
  std::size_t capture(const std::function<void()>& body) override {
    if (fail_) throw std::runtime_error("operation not permitted when stream is capturing");
    bodies_.push_back(body);
    return bodies_.size() - 1;
  }
  void replay(std::size_t index) override {
    ++calls_.replayed;
    bodies_.at(index)();
  }

 private:
  Calls& calls_;
  bool fail_;
  std::vector<std::function<void()>> bodies_;
};

constexpr std::int64_t kMicro = 2, kSteps = 7, kQatFrom = 3;

Config step_config() {
  Config c = test::small_model(2, 32);
  c.model.vocab_size = 64;
  c.model.bigram_vocab_size = 0;
  c.optim.muon_momentum_warmup_steps = 4;  // a different momentum at every step
  c.optim.grad_clip_norm = 0.5;
  return c;
}

// kSteps steps of grad_accum kMicro, the LR multiplier falling each step and
// QAT on from step kQatFrom. Returns the losses; `model` holds the weights.
std::vector<double> train(GPT& model, std::unique_ptr<GraphRecorder> recorder, std::vector<std::string>& notes) {
  const Config c = step_config();
  Optimizers opt(model, c.optim, at::kFloat);
  TrainStep step(model, opt, kMicro, nullptr, std::move(recorder), [&](const std::string& n) { notes.push_back(n); });
  std::uint64_t batch = 0;
  const NextBatch next = [&] {
    ++batch;
    return MicroBatch{test::tokens(2, 16, c.model.vocab_size, 100 + batch), test::tokens(2, 16, c.model.vocab_size, 500 + batch)};
  };
  std::vector<double> losses;
  for (std::int64_t s = 0; s < kSteps; ++s) {
    model.set_qat(s >= kQatFrom);
    losses.push_back(step.run(next, s, 1.0 - 0.1 * static_cast<double>(s)).item<double>());
  }
  EXPECT_EQ(batch, static_cast<std::uint64_t>(kSteps * kMicro));
  return losses;
}

// Trains two copies of one model, eagerly and through a RerunRecorder
// (whose captures throw if `failing`), and expects the same losses and the
// same weights bit for bit. Returns the recorded run's notes.
std::vector<std::string> expect_the_eager_run(bool failing, Calls& calls) {
  const Config c = step_config();
  GPT eager_model(c.model, {}), model(c.model, {});
  test::use_qat_plan(eager_model, c);
  test::use_qat_plan(model, c);
  test::randomise(eager_model, 7, 0.1);
  test::randomise(model, 7, 0.1);
  std::vector<std::string> eager_notes, notes;
  const auto eager = train(eager_model, nullptr, eager_notes);
  const auto recorded = train(model, std::make_unique<RerunRecorder>(calls, failing), notes);
  EXPECT_EQ(eager, recorded);
  for (std::size_t i = 0; i < model.parameters().size(); ++i)
    EXPECT_TRUE(at::equal(model.parameters()[i].tensor, eager_model.parameters()[i].tensor)) << model.parameters()[i].name;
  EXPECT_TRUE(eager_notes.empty());
  // The losses moved: the steps trained, on different batches.
  EXPECT_NE(eager.front(), eager.back());
  return notes;
}

TEST(TrainStep, ReplayedStepsGiveTheEagerStepsWeightsBitForBit) {
  Calls r;
  const auto notes = expect_the_eager_run(false, r);
  // One eager step and one capture per mode (QAT off, then on); the rest replayed.
  EXPECT_EQ(r.warmed, 2);
  EXPECT_EQ(r.replayed, kSteps - 2);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("captured the training step (qat:off looped:off)"), std::string::npos) << notes[0];
  EXPECT_NE(notes[1].find("(qat:on looped:off)"), std::string::npos) << notes[1];
}

TEST(TrainStep, AFailedCaptureIsReportedAndTheStepsRunEagerly) {
  Calls r;
  const auto notes = expect_the_eager_run(true, r);
  EXPECT_EQ(r.warmed, 1);
  EXPECT_EQ(r.replayed, 0);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("failed, every step runs eagerly from here: operation not permitted"), std::string::npos)
      << notes[0];
}

TEST(TrainStep, CudaGraphsAreForCudaDevicesOnly) {
  Config c;
  c.runtime.cuda_graphs = true;
  EXPECT_FALSE(use_cuda_graphs(true, at::kCPU));
  EXPECT_TRUE(use_cuda_graphs(true, at::Device(at::kCUDA, 0)));
  EXPECT_THROW(cuda_graph_recorder(at::kCPU), std::runtime_error);
  const auto notes = ignored_cuda_switches(c.runtime, at::kCPU);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("CUDA_GRAPHS=1 is ignored on cpu"), std::string::npos) << notes[0];
}

// The phases an observer sees in one eager step of kMicro micro-batches, in
// order; an observed step trains exactly as an unobserved one.
TEST(TrainStep, PhaseObserverSeesEachPhaseInOrder) {
  const Config c = step_config();
  GPT observed(c.model, {}), plain(c.model, {});
  Optimizers opt_observed(observed, c.optim, at::kFloat), opt_plain(plain, c.optim, at::kFloat);
  TrainStep a(observed, opt_observed, kMicro, nullptr), b(plain, opt_plain, kMicro, nullptr);
  std::string seen;
  a.observe_phases([&](StepPhase phase, bool begins) {
    seen += phase == StepPhase::Forward ? 'F' : phase == StepPhase::Backward ? 'B' : 'O';
    seen += begins ? '(' : ')';
  });
  auto batches = [&] {
    return [&c, n = std::uint64_t{0}]() mutable {
      ++n;
      return MicroBatch{test::tokens(2, 16, c.model.vocab_size, 100 + n), test::tokens(2, 16, c.model.vocab_size, 500 + n)};
    };
  };
  const double la = a.run(batches(), 0, 1.0).item<double>(), lb = b.run(batches(), 0, 1.0).item<double>();
  EXPECT_EQ(seen, "F(F)B(B)F(F)B(B)O(O)");
  EXPECT_EQ(la, lb);
  for (std::size_t i = 0; i < observed.parameters().size(); ++i)
    EXPECT_TRUE(at::equal(observed.parameters()[i].tensor, plain.parameters()[i].tensor)) << observed.parameters()[i].name;
}

}  // namespace
}  // namespace pgolf
