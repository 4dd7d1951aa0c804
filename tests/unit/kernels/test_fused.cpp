// The fused ops against the references they replace (the functions the
// model's unfused path runs): the CPU loops
// over fused_math.h (the arithmetic the CUDA kernels run) in float32,
// float64 and bf16, values and gradients, plus finite differences; the CUDA
// kernels against the CPU where a GPU is visible (skipped elsewhere).
#include <gtest/gtest.h>

#include "helpers.h"
#include "pgolf/kernels/fused.h"
#include "pgolf/core/runtime.h"
#include "pgolf/kernels/fused_math.h"
#include "pgolf/model/layers.h"

using namespace pgolf;

namespace {

// Tolerances per dtype: bf16 logits carry ~3 significant digits.
double tol(at::ScalarType dt) { return dt == at::kDouble ? 1e-10 : dt == at::kFloat ? 2e-5 : 3e-2; }

struct Case {
  at::ScalarType dtype;
  double cap;
};

const Case kCases[] = {{at::kFloat, 30.0}, {at::kFloat, 2.0}, {at::kDouble, 3.0}, {at::kBFloat16, 30.0}, {at::kBFloat16, 2.0}};

}  // namespace

TEST(FusedMath, MergedPartialLogSumExpEqualsOneStream) {
  const at::Tensor v = test::gaussian({1000}, 1, at::kDouble) * 20;
  fused_math::LogSumExp<double> whole;
  std::vector<fused_math::LogSumExp<double>> parts(8);  // as 8 threads would stride over the row
  for (int i = 0; i < 1000; ++i) {
    fused_math::lse_add(whole, v[i].item<double>());
    fused_math::lse_add(parts[i % 8], v[i].item<double>());
  }
  for (int stride = 4; stride > 0; stride /= 2)
    for (int t = 0; t < stride; ++t) parts[t] = fused_math::lse_merge(parts[t], parts[t + stride]);
  const double want = at::logsumexp(v, 0).item<double>();
  EXPECT_NEAR(fused_math::lse_value(whole), want, 1e-12);
  EXPECT_NEAR(fused_math::lse_value(parts[0]), want, 1e-12);
  fused_math::LogSumExp<double> empty;
  EXPECT_EQ(fused_math::lse_value(fused_math::lse_merge(parts[0], empty)), fused_math::lse_value(parts[0]));
}

TEST(FusedSoftcapCE, RowKernelsMatchAtenValuesAndGradients) {
  for (const Case& k : kCases) {
    const at::Tensor z = (test::gaussian({7, 50}, 2, at::kDouble) * 4).to(k.dtype);
    const at::Tensor y = test::tokens(1, 7, 50, 3).view({7});
    const auto acc = k.dtype == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor loss = at::empty({7}, acc), lse = at::empty({7}, acc);
    softcap_ce_rows(z, y, k.cap, loss, lse);
    at::Tensor zr = z.to(acc).requires_grad_(true);
    at::Tensor capped = softcap(zr, k.cap);
    at::Tensor ref = at::cross_entropy_loss(capped, y, {}, at::Reduction::None);
    EXPECT_TRUE(at::allclose(loss, ref.detach(), tol(k.dtype), tol(k.dtype))) << k.dtype << " cap " << k.cap;
    EXPECT_TRUE(at::allclose(lse, at::logsumexp(capped.detach(), 1), tol(k.dtype), tol(k.dtype)));
    const at::Tensor g = test::gaussian({7}, 4, acc);
    (ref * g).sum().backward();
    at::Tensor grad = z.clone();
    softcap_ce_rows_backward(grad, y, lse, g, k.cap);
    EXPECT_TRUE(at::allclose(grad.to(acc), zr.grad(), tol(k.dtype), tol(k.dtype))) << k.dtype << " cap " << k.cap;
  }
}

TEST(FusedSoftcapCE, ChunkedOpMatchesTheCompositionInValuesAndGradients) {
  for (const Case& k : kCases) {
    const at::Tensor h0 = test::gaussian({10, 16}, 5, at::kDouble).to(k.dtype);
    const at::Tensor w0 = (test::gaussian({40, 16}, 6, at::kDouble) * 0.5).to(k.dtype);
    const at::Tensor y = test::tokens(1, 10, 40, 7).view({10});
    const at::Tensor g = test::gaussian({10}, 8, k.dtype == at::kDouble ? at::kDouble : at::kFloat);
    at::Tensor h1 = h0.clone().requires_grad_(true), w1 = w0.clone().requires_grad_(true);
    at::Tensor h2 = h0.clone().requires_grad_(true), w2 = w0.clone().requires_grad_(true);
    const at::Tensor fused = fused_softcap_cross_entropy(h1, w1, y, k.cap, /*chunk_rows=*/3);
    const at::Tensor ref = softcap_cross_entropy(at::linear(h2, w2), y, k.cap);
    EXPECT_TRUE(at::allclose(fused.detach(), ref.detach(), tol(k.dtype), tol(k.dtype))) << k.dtype;
    (fused * g).sum().backward();
    (ref * g).sum().backward();
    const double t = k.dtype == at::kBFloat16 ? 6e-2 : tol(k.dtype);  // bf16: G and the products rounded
    EXPECT_TRUE(at::allclose(h1.grad().to(at::kDouble), h2.grad().to(at::kDouble), t, t)) << k.dtype << " grad h";
    EXPECT_TRUE(at::allclose(w1.grad().to(at::kDouble), w2.grad().to(at::kDouble), t, t)) << k.dtype << " grad w";
  }
}

TEST(FusedSoftcapCE, GradientsMatchFiniteDifferences) {
  at::Tensor h = test::gaussian({5, 6}, 9, at::kDouble).requires_grad_(true);
  at::Tensor w = test::gaussian({11, 6}, 10, at::kDouble).requires_grad_(true);
  const at::Tensor y = test::tokens(1, 5, 11, 11).view({5});
  test::expect_gradients_match_finite_differences([&] { return fused_softcap_cross_entropy(h, w, y, 2.5, 2).sum(); }, {&h, &w},
                                                  7, 1e-7);
}

TEST(FusedLeakyRelu2, MatchesTheCompositionInValuesAndGradients) {
  for (at::ScalarType dt : {at::kFloat, at::kDouble, at::kBFloat16})
    for (double slope : {0.0, 0.5}) {
      const at::Tensor x0 = test::gaussian({3, 33}, 12, at::kDouble).to(dt);
      at::Tensor x1 = x0.clone().requires_grad_(true), x2 = x0.clone().requires_grad_(true);
      const at::Tensor a = fused_leaky_relu2(x1, slope);
      const at::Tensor b = slope == 0.0 ? relu_squared(x2) : leaky_relu_squared(x2, slope);
      EXPECT_TRUE(at::allclose(a.to(at::kDouble), b.detach().to(at::kDouble), tol(dt), tol(dt))) << dt << " " << slope;
      const at::Tensor g = test::gaussian({3, 33}, 13, at::kDouble).to(dt);
      (a * g).sum().backward();
      (b * g).sum().backward();
      EXPECT_TRUE(at::allclose(x1.grad().to(at::kDouble), x2.grad().to(at::kDouble), tol(dt), tol(dt))) << dt << " " << slope;
    }
}

TEST(FusedQkNormRope, MatchesTheCompositionInValuesAndGradients) {
  for (at::ScalarType dt : {at::kFloat, at::kDouble, at::kBFloat16})
    for (std::int64_t rotated : {8, 4})  // full and partial RoPE of head_dim 8
      for (bool with_gain : {true, false})
        for (double scale : {1.0, 1e-4}) {  // 1e-4: RMSNorm's epsilon matters
          const auto [cos, sin] = rope_tables(5, rotated, 10000.0, at::kCPU);
          const at::Tensor x0 = (test::gaussian({2, 5, 3, 8}, 18, at::kDouble) * scale).to(dt);
          const at::Tensor g0 = (test::gaussian({3}, 19, at::kDouble) + 1.5).to(dt == at::kDouble ? at::kDouble : at::kFloat);
          at::Tensor x1 = x0.clone().requires_grad_(true), x2 = x0.clone().requires_grad_(true);
          at::Tensor g1 = with_gain ? g0.clone().requires_grad_(true) : at::Tensor();
          at::Tensor g2 = with_gain ? g0.clone().requires_grad_(true) : at::Tensor();
          const at::Tensor a = fused_qk_norm_rope(x1, cos, sin, g1), b = qk_norm_rope(x2, cos, sin, g2);
          const std::string what = std::string(c10::toString(dt)) + " rotated " + std::to_string(rotated) +
                                   (with_gain ? " gain" : "") + " scale " + std::to_string(scale);
          EXPECT_TRUE(at::allclose(a.to(at::kDouble), b.detach().to(at::kDouble), tol(dt), tol(dt))) << what;
          const at::Tensor gy = test::gaussian({2, 5, 3, 8}, 20, at::kDouble).to(dt);
          (a * gy).sum().backward();
          (b * gy).sum().backward();
          const double t = dt == at::kBFloat16 ? 6e-2 : tol(dt);
          // Gradients scale like 1/scale: compare relative to their size.
          const double gs = x2.grad().abs().max().to(at::kDouble).item<double>();
          EXPECT_TRUE(at::allclose(x1.grad().to(at::kDouble) / gs, x2.grad().to(at::kDouble) / gs, t, t)) << what << " grad x";
          if (with_gain) {
            EXPECT_TRUE(at::allclose(g1.grad().to(at::kDouble), g2.grad().to(at::kDouble), t, t)) << what << " grad gain";
          }
        }
}

TEST(FusedKernels, TheSwitchIsIgnoredWithANoteOffCuda) {
  Config c;
  EXPECT_TRUE(ignored_cuda_switches(c.runtime, at::kCPU).empty());
  c.runtime.fused_kernels = true;
  EXPECT_FALSE(use_fused_kernels(true, at::kCPU));
  const auto notes = ignored_cuda_switches(c.runtime, at::kCPU);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("FUSED_KERNELS=1 is ignored on cpu"), std::string::npos) << notes[0];
  EXPECT_TRUE(use_fused_kernels(true, at::Device(at::kCUDA, 0)));
  EXPECT_TRUE(ignored_cuda_switches(c.runtime, at::Device(at::kCUDA, 0)).empty());
}

// Built with the kernels but without a usable GPU (this machine: no driver),
// asking for them on a CUDA device stops at the model's start with the
// runtime's reason and the architectures built. On a GPU,
// Cuda.FusedKernelsHaveAnImageForThisGpu checks that they load.
TEST(FusedKernels, WithoutAUsableGpuTheModelStopsNamingWhy) {
#if defined(PGOLF_WITH_CUDA) && PGOLF_HAS_CUDA_KERNELS
  if (at::hasCUDA()) GTEST_SKIP() << "a GPU is visible";
  try {
    check_fused_kernels_run_on(at::Device(at::kCUDA, 0));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("FUSED_KERNELS=1: the CUDA runtime cannot load this pgolf's kernels on GPU 0: ", 0), 0u) << what;
    EXPECT_NE(what.find(std::string("compute capabilities ") + cuda_kernel_architectures()), std::string::npos) << what;
  }
#else
  GTEST_SKIP() << "built without the CUDA kernels";
#endif
}

// The CUDA kernels against the CPU loops (the launch: grid, block reduction,
// loads and stores), in float32 and bf16, at the 12L head's width.
TEST(FusedKernels, CudaMatchesCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible";
  const at::Device gpu(at::kCUDA, 0);
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    const at::Tensor h0 = test::gaussian({300, 64}, 14, at::kDouble).to(dt);
    const at::Tensor w0 = (test::gaussian({1024, 64}, 15, at::kDouble) * 0.3).to(dt);
    const at::Tensor y = test::tokens(1, 300, 1024, 16).view({300});
    at::Tensor hc = h0.clone().requires_grad_(true), wc = w0.clone().requires_grad_(true);
    at::Tensor hg = h0.to(gpu).requires_grad_(true), wg = w0.to(gpu).requires_grad_(true);
    const at::Tensor lc = fused_softcap_cross_entropy(hc, wc, y, 30.0, 128);
    const at::Tensor lg = fused_softcap_cross_entropy(hg, wg, y.to(gpu), 30.0, 128);
    EXPECT_TRUE(at::allclose(lg.cpu(), lc.detach(), 1e-3, 1e-3)) << dt;
    lc.sum().backward();
    lg.sum().backward();
    EXPECT_TRUE(at::allclose(hg.grad().cpu().to(at::kFloat), hc.grad().to(at::kFloat), 2e-2, 2e-2)) << dt;
    EXPECT_TRUE(at::allclose(wg.grad().cpu().to(at::kFloat), wc.grad().to(at::kFloat), 2e-2, 2e-2)) << dt;
    const at::Tensor x0 = test::gaussian({4, 1536}, 17, at::kDouble).to(dt);
    at::Tensor xc = x0.clone().requires_grad_(true), xg = x0.to(gpu).requires_grad_(true);
    const at::Tensor ac = fused_leaky_relu2(xc, 0.5), ag = fused_leaky_relu2(xg, 0.5);
    EXPECT_TRUE(at::allclose(ag.cpu().to(at::kFloat), ac.detach().to(at::kFloat), 1e-5, 1e-5)) << dt;
    ac.sum().backward();
    ag.sum().backward();
    EXPECT_TRUE(at::allclose(xg.grad().cpu().to(at::kFloat), xc.grad().to(at::kFloat), 1e-5, 1e-5)) << dt;
    const auto [cos, sin] = rope_tables(40, 16, 10000.0, at::kCPU);  // partial RoPE of head_dim 64
    const at::Tensor q0 = test::gaussian({2, 40, 8, 64}, 21, at::kDouble).to(dt);
    const at::Tensor gain = at::full({8}, 1.5, at::kFloat);
    at::Tensor qc = q0.clone().requires_grad_(true), qg = q0.to(gpu).requires_grad_(true);
    at::Tensor gc = gain.clone().requires_grad_(true), gg = gain.to(gpu).requires_grad_(true);
    const at::Tensor oc = fused_qk_norm_rope(qc, cos, sin, gc), og = fused_qk_norm_rope(qg, cos.to(gpu), sin.to(gpu), gg);
    EXPECT_TRUE(at::allclose(og.cpu().to(at::kFloat), oc.detach().to(at::kFloat), 2e-2, 2e-2)) << dt;
    (oc * oc.detach()).sum().backward();
    (og * og.detach()).sum().backward();
    EXPECT_TRUE(at::allclose(qg.grad().cpu().to(at::kFloat), qc.grad().to(at::kFloat), 3e-2, 3e-2)) << dt;
    EXPECT_TRUE(at::allclose(gg.grad().cpu(), gc.grad(), 3e-2, 3e-2)) << dt;
  }
}
