// Launchers of the fused CUDA kernels (src/fused_kernels.cu), on raw device
// pointers and a cudaStream_t passed as void*. Called by src/fused.cpp, which
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

}  // namespace pgolf::cuda
