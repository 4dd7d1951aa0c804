// Host <-> device transfers that do not stall the host during training:
// micro-batches prefetched to the GPU one ahead, and small per-step values
// (loss, elapsed time) read back to the host without waiting for the step
// that produced them. On CPU both are plain, immediate operations.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "pgolf/data/data.h"

namespace pgolf {

// Micro-batches of one rank on the compute device. On CUDA, when batch k is
// handed out, batch k+1 is cut from the token stream into pinned host memory
// and copied to the GPU on a side stream, so the copy overlaps batch k's
// compute and the host never waits for it; the compute stream waits for the
// copy (an event) only when it uses the batch. Same tokens, same order as
// DistributedTokenLoader::next_batch.
class BatchPrefetcher {
 public:
  struct Shape {
    std::int64_t global_tokens = 0, seq_len = 0, grad_accum = 1;
  };
  BatchPrefetcher(DistributedTokenLoader& loader, Shape shape, at::Device device);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // Inputs and targets [rows, seq_len], int64 on the device.
  std::pair<at::Tensor, at::Tensor> next();
  // Stream position of the batch next() returns next (not of the one in flight).
  TokenStream::Position position() const;
  // Continues from `p`, dropping the batch in flight.
  void seek(TokenStream::Position p);

 private:
  struct InFlight;
  void start();
  DistributedTokenLoader& loader_;
  const Shape shape_;
  const at::Device device_;
  std::unique_ptr<InFlight> in_flight_;
  struct CopyStream;
  std::unique_ptr<CopyStream> copy_stream_;
};

// A few numbers computed on the device, on their way to the host: the copy
// into pinned memory is queued on the current stream and values() waits for
// that copy alone (an event), not for the work queued after it. Reading the
// values of step k after step k+1 has been queued keeps the GPU busy.
class AsyncReadback {
 public:
  explicit AsyncReadback(const at::Tensor& values);  // any dtype, any shape; read as doubles
  ~AsyncReadback();
  AsyncReadback(AsyncReadback&&) noexcept;
  AsyncReadback& operator=(AsyncReadback&&) noexcept;
  std::vector<double> values();

 private:
  at::Tensor host_;
  struct Event;
  std::unique_ptr<Event> ready_;
};

}  // namespace pgolf
