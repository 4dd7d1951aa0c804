// The loss head's soft-capped cross-entropy: the reference the model's unfused
// head computes, the fused op (FUSED_KERNELS) that replaces it, its row
// kernels and their CUDA launchers (src/kernels/softcap_ce.{cpp,cu}).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace pgolf {

// Reference: cross_entropy(softcap(z), targets) for pre-cap logits z [N, V],
// softcap(z) = cap * tanh(z / cap) computed in float32 (float64 for float64
// z), reduced as asked (None: per row [N]; Mean: the seeds' loss).
at::Tensor softcap_cross_entropy(const at::Tensor& z, const at::Tensor& targets, double cap,
                                 at::Reduction::Reduction reduction = at::Reduction::None);

// Fused: softcap_cross_entropy(at::linear(h, w), targets, cap) per row [N]
// (float32; float64 for float64 inputs) of hidden states h [N, D] against the
// tied head w [V, D] (h's dtype). Rows go in chunks of `chunk_rows`, so only
// one chunk's pre-cap logits [chunk, V] exist at a time, in h's dtype, never
// the whole batch's float32 logits. Forward: one pass per row (online max /
// sum of exp), keeping the row's lse. Backward: recomputes each chunk's
// logits and turns them in place into the gradient with respect to them
// (fused_math::softcap_ce_grad), then grad_h = G w and grad_w = sum over
// chunks of G^T h (accumulated in float32).
at::Tensor fused_softcap_cross_entropy(const at::Tensor& h, const at::Tensor& w, const at::Tensor& targets, double cap,
                                       std::int64_t chunk_rows = 8192);

// The row kernels, on z's device: for pre-cap logits z [n, V] and targets
// [n], loss[r] = lse[r] - softcap(z[r, y_r]) and lse[r] (both [n], float32, or
// float64 for float64 z); the backward overwrites z with the gradient with
// respect to it, given the rows' upstream gradient g [n] (lse's dtype).
void softcap_ce_rows(const at::Tensor& z, const at::Tensor& targets, double cap, const at::Tensor& loss, const at::Tensor& lse);
void softcap_ce_rows_backward(const at::Tensor& z, const at::Tensor& targets, const at::Tensor& lse, const at::Tensor& g, double cap);

namespace cuda {
// Launchers on raw device pointers, a cudaStream_t passed as void*; `bf16`:
// the data are bfloat16, else float32; arithmetic is float32.
// One block per row: loss[r] = lse[r] - softcap(z[r, y_r]) (fused_math.h).
void softcap_ce_forward(const void* z, bool bf16, const std::int64_t* targets, std::int64_t rows, std::int64_t vocab,
                        float cap, float* loss, float* lse, void* stream);
// z[r, j] := softcap_ce_grad(z[r, j], cap, lse[r], j == y_r, g[r]), in place.
void softcap_ce_backward(void* z, bool bf16, const std::int64_t* targets, const float* lse, const float* g,
                         std::int64_t rows, std::int64_t vocab, float cap, void* stream);
}  // namespace cuda

}  // namespace pgolf
