// Fused ops (FUSED_KERNELS=1), each replacing an ATen composition named
// beside it, with its backward. The arithmetic is fused_math.h; on CUDA the
// kernels of fused_cuda.h run it, elsewhere CPU loops over the same
// functions (what the CPU tests check, in float32, float64 and bf16).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "pgolf/config.h"

namespace pgolf {

// Replaces at::cross_entropy_loss(softcap(at::linear(h, w), cap).to(float32),
// targets, reduction none): per-row loss [N] (float32; float64 for float64
// inputs) of hidden states h [N, D] against the tied head w [V, D] (h's dtype).
// Rows go in chunks of `chunk_rows`, so only one chunk's pre-cap logits
// [chunk, V] exist at a time, in h's dtype, never the whole batch's float32
// logits. Forward: one pass per row (online max / sum of exp), keeping the
// row's lse. Backward: recomputes each chunk's logits and turns them in place
// into the gradient with respect to them (fused_math::softcap_ce_grad), then
// grad_h = G w and grad_w = sum over chunks of G^T h (accumulated in float32).
at::Tensor fused_softcap_cross_entropy(const at::Tensor& h, const at::Tensor& w, const at::Tensor& targets, double cap,
                                       std::int64_t chunk_rows = 8192);

// Replaces at::leaky_relu(x, slope).square() (slope 0: at::relu(x).square()):
// one pass forward, one pass backward (grad_x = grad_y * 2 a(x) a'(x)).
at::Tensor fused_leaky_relu2(const at::Tensor& x, double slope);

// The row kernels, on z's device: for pre-cap logits z [n, V] and targets
// [n], loss[r] = lse[r] - softcap(z[r, y_r]) and lse[r] (both [n], float32, or
// float64 for float64 z); the backward overwrites z with the gradient with
// respect to it, given the rows' upstream gradient g [n] (lse's dtype).
void softcap_ce_rows(const at::Tensor& z, const at::Tensor& targets, double cap, const at::Tensor& loss, const at::Tensor& lse);
void softcap_ce_rows_backward(const at::Tensor& z, const at::Tensor& targets, const at::Tensor& lse, const at::Tensor& g, double cap);

// Whether the model uses the fused ops on `device`: FUSED_KERNELS on CUDA.
bool use_fused_kernels(const Config& cfg, const at::Device& device);
// A log note where FUSED_KERNELS is set but ignored (not CUDA); "" otherwise.
std::string fused_kernels_note(const Config& cfg, const at::Device& device);

}  // namespace pgolf
