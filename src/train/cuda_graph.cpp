// CUDA graphs for the captured training step (step.h).
#include <stdexcept>

#include "pgolf/core/runtime.h"
#include "pgolf/train/step.h"

#ifdef PGOLF_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace pgolf {

#ifdef PGOLF_WITH_CUDA
namespace {

// Makes `waiter` wait for the work queued on `on` so far (an event, not the host).
void wait_for(const c10::cuda::CUDAStream& waiter, const c10::cuda::CUDAStream& on) {
  at::cuda::CUDAEvent e;
  e.record(on);
  e.block(waiter);
}

// Graphs are captured on a stream of their own (capture is impossible on the
// default stream) and share one memory pool: they never run at the same time
// and no buffer of one is read by another, so one set of activations serves
// every mode. Capture mode "thread local": other threads (the autograd
// engine's, NCCL's watchdog) may make calls a global capture would forbid.
class CudaGraphRecorder : public GraphRecorder {
 public:
  explicit CudaGraphRecorder(const at::Device& device)
      : stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index())), pool_(at::cuda::graph_pool_handle()) {}

  void warm(const std::function<void()>& f) override { on_stream(f); }

  // The eager blocks cached so far go back to the device first, so that the
  // graph's pool and the eager step's cache are not both held at the peak.
  std::size_t capture(const std::function<void()>& body) override {
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    synchronize(stream_.device());
    c10::cuda::CUDACachingAllocator::emptyCache();
    on_stream([&] {
      graph->capture_begin(pool_, cudaStreamCaptureModeThreadLocal);
      try {
        body();
      } catch (...) {
        end_failed_capture(*graph);
        throw;
      }
      graph->capture_end();
    });
    graphs_.push_back(std::move(graph));
    return graphs_.size() - 1;
  }

  void replay(std::size_t index) override { graphs_.at(index)->replay(); }

 private:
  void on_stream(const std::function<void()>& f) {
    const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(stream_.device_index());
    wait_for(stream_, current);
    {
      c10::cuda::CUDAStreamGuard guard(stream_);
      f();
    }
    wait_for(current, stream_);
  }

  // Ends the capture `body` broke off, so the stream leaves capture mode,
  // and clears the error it left, so the next launch check does not see it.
  static void end_failed_capture(at::cuda::CUDAGraph& graph) {
    try {
      graph.capture_end();
    } catch (const std::exception&) {
      // The capture was invalid; the error that broke it is the one to report.
    }
    (void)cudaGetLastError();
  }

  c10::cuda::CUDAStream stream_;
  c10::MempoolId_t pool_;
  std::vector<std::unique_ptr<at::cuda::CUDAGraph>> graphs_;
};

}  // namespace

std::unique_ptr<GraphRecorder> cuda_graph_recorder(const at::Device& device) {
  if (!device.is_cuda()) throw std::runtime_error("CUDA graphs need a CUDA device, got " + device.str());
  return std::make_unique<CudaGraphRecorder>(device);
}
#else
std::unique_ptr<GraphRecorder> cuda_graph_recorder(const at::Device& device) {
  throw std::runtime_error("CUDA graphs need a build with the CUDA path (this build has none; device " + device.str() + ")");
}
#endif

}  // namespace pgolf
