// Launchers of the fused CUDA kernels (src/kernels/fused_kernels.cu), on raw device
// pointers and a cudaStream_t passed as void*. Called by src/kernels/fused.cpp, which
// holds the ATen compositions they replace; built with PGOLF_WITH_CUDA only.
// `bf16`: the data are bfloat16, else float32; arithmetic is float32.
#pragma once
#include <cstdint>

namespace pgolf::cuda {

// One block per row: loss[r] = lse[r] - softcap(z[r, y_r]) (fused_math.h).
void softcap_ce_forward(const void* z, bool bf16, const std::int64_t* targets, std::int64_t rows, std::int64_t vocab,
                        float cap, float* loss, float* lse, void* stream);
// z[r, j] := softcap_ce_grad(z[r, j], cap, lse[r], j == y_r, g[r]), in place.
void softcap_ce_backward(void* z, bool bf16, const std::int64_t* targets, const float* lse, const float* g,
                         std::int64_t rows, std::int64_t vocab, float cap, void* stream);
// y = leaky_relu2(x, slope); gx = gy * leaky_relu2_grad(x, slope).
void leaky_relu2_forward(const void* x, void* y, bool bf16, std::int64_t n, float slope, void* stream);
void leaky_relu2_backward(const void* x, const void* gy, void* gx, bool bf16, std::int64_t n, float slope, void* stream);

// One warp per head vector (rows = B*T*H vectors of hd, head h = row % heads):
// y = fused_qk_norm_rope(x); the backward writes gx and, when gain is given,
// ggain_rows[row] = sum(gy * rotated n) (summed per head by the caller).
void qk_norm_rope_forward(const void* x, void* y, bool bf16, const float* cos, const float* sin, const float* gain,
                          std::int64_t rows, std::int64_t seq, std::int64_t heads, std::int64_t hd, std::int64_t half,
                          float eps, void* stream);
void qk_norm_rope_backward(const void* x, const void* gy, void* gx, float* ggain_rows, bool bf16, const float* cos,
                           const float* sin, const float* gain, std::int64_t rows, std::int64_t seq, std::int64_t heads,
                           std::int64_t hd, std::int64_t half, float eps, void* stream);

// Backward kernels that sum per-channel gradients run this many blocks (fewer
// for few rows), each writing its own partial row; the caller sums the
// partials. The count depends on `rows` only, so the sums are the same on
// every run and device.
std::int64_t column_partial_blocks(std::int64_t rows);

// One warp per row of D: out = residual_mix(x, y, p, q), n = s * rms_norm(out)
// (p null: 1). The backward writes gx, gy and partial [blocks, 2, D] (the
// per-channel sums of x * gt and y * gt, gt = out's total gradient).
void residual_norm_forward(const void* x, const void* y, const float* p, const float* q, void* out, void* n, bool bf16,
                           std::int64_t rows, std::int64_t dim, float s, float eps, void* stream);
void residual_norm_backward(const void* x, const void* y, const float* p, const float* q, const void* gout, const void* gn,
                            void* gx, void* gy, float* partial, bool bf16, std::int64_t rows, std::int64_t dim, float s, float eps,
                            void* stream);

// One warp per position (row = b * seq + t) of D, g = sigmoid(gate) [D]:
// out = SmearGate and RMSNorm in the given order (fused.h). The backward
// writes gx and partial [blocks, D] of the gate's gradient.
void smear_norm_forward(const void* x, const float* g, void* out, bool bf16, std::int64_t rows, std::int64_t seq,
                        std::int64_t dim, bool smear_first, float eps, void* stream);
void smear_norm_backward(const void* x, const float* g, const void* gout, void* gx, float* partial, bool bf16, std::int64_t rows,
                         std::int64_t seq, std::int64_t dim, bool smear_first, float eps, void* stream);

// One warp per position and KV group (groups = B*T*Hkv, `group` heads each,
// at most 32): out = xsa(y, v); the backward writes gy and gv.
void xsa_forward(const void* y, const void* v, void* out, bool bf16, std::int64_t groups, std::int64_t group, std::int64_t hd,
                 void* stream);
void xsa_backward(const void* y, const void* v, const void* g, void* gy, void* gv, bool bf16, std::int64_t groups,
                  std::int64_t group, std::int64_t hd, void* stream);

}  // namespace pgolf::cuda
