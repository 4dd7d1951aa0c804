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

}  // namespace pgolf::cuda
