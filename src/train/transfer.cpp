#include "pgolf/train/transfer.h"

#ifdef PGOLF_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace pgolf {

struct BatchPrefetcher::CopyStream {
#ifdef PGOLF_WITH_CUDA
  explicit CopyStream(const at::Device& d) : stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, d.index())) {}
  c10::cuda::CUDAStream stream;
#endif
};

struct BatchPrefetcher::InFlight {
  TokenStream::Position before;  // stream position before this batch was taken
  at::Tensor inputs, targets;
#ifdef PGOLF_WITH_CUDA
  at::cuda::CUDAEvent copied;  // recorded on the copy stream after both copies
#endif
};

namespace {

// One side of a batch as a [rows, seq_len] int64 host tensor, in pinned
// (page-locked) memory when it is bound for a GPU, so the copy is a DMA the
// host does not wait for.
at::Tensor host_tensor(const std::vector<std::int64_t>& v, std::int64_t rows, std::int64_t seq_len, bool pinned) {
  at::Tensor t = at::empty({rows, seq_len}, at::TensorOptions().dtype(at::kLong).pinned_memory(pinned));
  std::copy(v.begin(), v.end(), t.data_ptr<std::int64_t>());
  return t;
}

}  // namespace

BatchPrefetcher::BatchPrefetcher(DistributedTokenLoader& loader, Shape shape, at::Device device)
    : loader_(loader), shape_(shape), device_(device) {
#ifdef PGOLF_WITH_CUDA
  if (device.is_cuda()) copy_stream_ = std::make_unique<CopyStream>(device);
#endif
}

BatchPrefetcher::~BatchPrefetcher() = default;

void BatchPrefetcher::start() {
  auto f = std::make_unique<InFlight>();
  f->before = loader_.stream().position();
  Batch b = loader_.next_batch(shape_.global_tokens, shape_.seq_len, shape_.grad_accum);
  const bool gpu = copy_stream_ != nullptr;
  f->inputs = host_tensor(b.inputs, b.rows, b.seq_len, gpu);
  f->targets = host_tensor(b.targets, b.rows, b.seq_len, gpu);
#ifdef PGOLF_WITH_CUDA
  if (gpu) {
    c10::cuda::CUDAStreamGuard guard(copy_stream_->stream);
    f->inputs = f->inputs.to(device_, /*non_blocking=*/true);
    f->targets = f->targets.to(device_, /*non_blocking=*/true);
    f->copied.record(copy_stream_->stream);
  }
#endif
  in_flight_ = std::move(f);
}

std::pair<at::Tensor, at::Tensor> BatchPrefetcher::next() {
  if (!in_flight_) start();
  std::unique_ptr<InFlight> f = std::move(in_flight_);
#ifdef PGOLF_WITH_CUDA
  if (copy_stream_) {
    // The compute stream waits for the copy; the allocator learns that the
    // tensors (allocated on the copy stream) are used on the compute stream.
    const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device_.index());
    f->copied.block(compute);
    f->inputs.record_stream(compute);
    f->targets.record_stream(compute);
  }
#endif
  start();
  return {f->inputs, f->targets};
}

TokenStream::Position BatchPrefetcher::position() const {
  return in_flight_ ? in_flight_->before : loader_.stream().position();
}

void BatchPrefetcher::seek(TokenStream::Position p) {
  in_flight_.reset();
  loader_.stream().seek(p);
}

struct AsyncReadback::Event {
#ifdef PGOLF_WITH_CUDA
  at::cuda::CUDAEvent copied;
#endif
};

AsyncReadback::AsyncReadback(const at::Tensor& values) {
  const at::Tensor v = values.detach().to(at::kDouble).reshape({-1});
  if (!v.is_cuda()) {
    host_ = v.clone();
    return;
  }
#ifdef PGOLF_WITH_CUDA
  host_ = at::empty(v.sizes(), v.options().device(at::kCPU).pinned_memory(true));
  host_.copy_(v, /*non_blocking=*/true);
  ready_ = std::make_unique<Event>();
  ready_->copied.record(c10::cuda::getCurrentCUDAStream(v.device().index()));
#endif
}

AsyncReadback::~AsyncReadback() = default;
AsyncReadback::AsyncReadback(AsyncReadback&&) noexcept = default;
AsyncReadback& AsyncReadback::operator=(AsyncReadback&&) noexcept = default;

std::vector<double> AsyncReadback::values() {
#ifdef PGOLF_WITH_CUDA
  if (ready_) ready_->copied.synchronize();
#endif
  const double* p = host_.data_ptr<double>();
  return std::vector<double>(p, p + host_.numel());
}

}  // namespace pgolf
