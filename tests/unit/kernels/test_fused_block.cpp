// The fused row ops of a block (residual + RMSNorm, SmearGate + RMSNorm,
// XSA) against the references they replace (the model's unfused path): the CPU loops over
// fused_math.h in float32, float64 and bf16, values and gradients, plus
// finite differences; the CUDA kernels against the CPU loops and the fused
// model against the ATen one where a GPU is visible (skipped elsewhere).
#include <gtest/gtest.h>

#include "helpers.h"
#include "pgolf/kernels/fused.h"
#include "pgolf/model/layers.h"
#include "pgolf/model/model.h"

using namespace pgolf;

namespace {

const at::ScalarType kDtypes[] = {at::kFloat, at::kDouble, at::kBFloat16};

// Value tolerance per dtype; gradients of bf16 data get a looser one (products rounded).
double tol(at::ScalarType dt) { return dt == at::kDouble ? 1e-10 : dt == at::kFloat ? 2e-5 : 3e-2; }
double grad_tol(at::ScalarType dt) { return dt == at::kBFloat16 ? 6e-2 : tol(dt); }
at::ScalarType acc(at::ScalarType dt) { return dt == at::kDouble ? at::kDouble : at::kFloat; }

// a and b close relative to b's largest magnitude.
bool close_scaled(const at::Tensor& a, const at::Tensor& b, double t) {
  const double scale = std::max(1e-30, b.abs().max().to(at::kDouble).item<double>());
  return at::allclose(a.to(at::kDouble) / scale, b.to(at::kDouble) / scale, t, t);
}

// Leaf copies of `t`, one for each side of a comparison.
std::pair<at::Tensor, at::Tensor> twins(const at::Tensor& t) {
  return {t.clone().requires_grad_(true), t.clone().requires_grad_(true)};
}

}  // namespace

TEST(FusedResidualNorm, MatchesTheCompositionInValuesAndGradients) {
  for (at::ScalarType dt : kDtypes)
    for (bool with_p : {true, false})
      for (double s : {1.0, 0.5})
        for (double scale : {1.0, 1e-4}) {  // 1e-4: RMSNorm's epsilon matters
          const std::string what = std::string(c10::toString(dt)) + (with_p ? " p" : " no p") + " s " + std::to_string(s) +
                                   " scale " + std::to_string(scale);
          const at::Tensor x0 = (test::gaussian({2, 5, 24}, 1, at::kDouble) * scale).to(dt);
          const at::Tensor y0 = (test::gaussian({2, 5, 24}, 2, at::kDouble) * scale).to(dt);
          auto [x1, x2] = twins(x0);
          auto [y1, y2] = twins(y0);
          auto [p1, p2] = twins(test::gaussian({24}, 3, acc(dt)) + 1);
          auto [q1, q2] = twins(test::gaussian({24}, 4, acc(dt)));
          const auto [o1, n1] = fused_residual_norm(x1, y1, with_p ? p1 : at::Tensor(), q1, s);
          const auto [o2, n2] = residual_norm(x2, y2, with_p ? p2 : at::Tensor(), q2, s);
          EXPECT_TRUE(close_scaled(o1, o2.detach(), tol(dt))) << what << " out";
          EXPECT_TRUE(close_scaled(n1, n2.detach(), tol(dt))) << what << " n";
          const at::Tensor go = test::gaussian({2, 5, 24}, 5, at::kDouble).to(dt);
          const at::Tensor gn = test::gaussian({2, 5, 24}, 6, at::kDouble).to(dt);
          ((o1 * go).sum() + (n1 * gn).sum()).backward();
          ((o2 * go).sum() + (n2 * gn).sum()).backward();
          EXPECT_TRUE(close_scaled(x1.grad(), x2.grad(), grad_tol(dt))) << what << " grad x";
          EXPECT_TRUE(close_scaled(y1.grad(), y2.grad(), grad_tol(dt))) << what << " grad y";
          EXPECT_TRUE(close_scaled(q1.grad(), q2.grad(), grad_tol(dt))) << what << " grad q";
          if (with_p) {
            EXPECT_TRUE(close_scaled(p1.grad(), p2.grad(), grad_tol(dt))) << what << " grad p";
          }
        }
}

TEST(FusedResidualNorm, GradientsMatchFiniteDifferences) {
  // 150 rows: more than one chunk of per-channel partial sums.
  at::Tensor x = test::gaussian({150, 6}, 7, at::kDouble).requires_grad_(true);
  at::Tensor y = test::gaussian({150, 6}, 8, at::kDouble).requires_grad_(true);
  at::Tensor p = (test::gaussian({6}, 9, at::kDouble) + 1).requires_grad_(true);
  at::Tensor q = test::gaussian({6}, 10, at::kDouble).requires_grad_(true);
  const at::Tensor w = test::gaussian({150, 6}, 11, at::kDouble);
  auto f = [&] {
    const auto [out, n] = fused_residual_norm(x, y, p, q, 0.7);
    return (out * w).sum() + (n * n * w).sum();
  };
  test::expect_gradients_match_finite_differences(f, {&x, &y, &p, &q}, 13, 1e-6);
}

TEST(FusedSmearNorm, MatchesTheCompositionInBothOrders) {
  for (at::ScalarType dt : kDtypes)
    for (bool smear_first : {true, false})
      for (double scale : {1.0, 1e-4}) {
        const std::string what = std::string(c10::toString(dt)) + (smear_first ? " smear first" : " norm first") + " scale " +
                                 std::to_string(scale);
        // Two sequences: the second's first position takes nothing from the first sequence.
        auto [x1, x2] = twins((test::gaussian({2, 7, 20}, 12, at::kDouble) * scale).to(dt));
        auto [g1, g2] = twins(test::gaussian({20}, 13, acc(dt)));
        const at::Tensor a = fused_smear_norm(x1, g1, smear_first);
        const at::Tensor b = smear_norm(x2, g2, smear_first);
        EXPECT_TRUE(close_scaled(a, b.detach(), tol(dt))) << what;
        const at::Tensor gy = test::gaussian({2, 7, 20}, 14, at::kDouble).to(dt);
        (a * gy).sum().backward();
        (b * gy).sum().backward();
        EXPECT_TRUE(close_scaled(x1.grad(), x2.grad(), grad_tol(dt))) << what << " grad x";
        EXPECT_TRUE(close_scaled(g1.grad(), g2.grad(), grad_tol(dt))) << what << " grad gate";
      }
}

TEST(FusedSmearNorm, GradientsMatchFiniteDifferences) {
  for (bool smear_first : {true, false}) {
    at::Tensor x = test::gaussian({3, 50, 5}, 15, at::kDouble).requires_grad_(true);  // 150 rows: several chunks
    at::Tensor g = test::gaussian({5}, 16, at::kDouble).requires_grad_(true);
    const at::Tensor w = test::gaussian({3, 50, 5}, 17, at::kDouble);
    auto f = [&] { return (fused_smear_norm(x, g, smear_first) * w).sum(); };
    test::expect_gradients_match_finite_differences(f, {&x, &g}, 11, 1e-6);
  }
}

TEST(FusedXsa, MatchesTheCompositionForEveryGroupSize) {
  for (at::ScalarType dt : kDtypes)
    for (std::int64_t kv : {4, 2, 1}) {  // 4 query heads: groups of 1, 2 and 4
      const std::string what = std::string(c10::toString(dt)) + " kv heads " + std::to_string(kv);
      auto [y1, y2] = twins(test::gaussian({2, 3, 4, 8}, 18, at::kDouble).to(dt));
      auto [v1, v2] = twins(test::gaussian({2, 3, kv, 8}, 19, at::kDouble).to(dt));
      const at::Tensor a = fused_xsa(y1, v1), b = xsa(y2, v2);
      EXPECT_TRUE(close_scaled(a, b.detach(), tol(dt))) << what;
      const at::Tensor g = test::gaussian({2, 3, 4, 8}, 20, at::kDouble).to(dt);
      (a * g).sum().backward();
      (b * g).sum().backward();
      EXPECT_TRUE(close_scaled(y1.grad(), y2.grad(), grad_tol(dt))) << what << " grad y";
      EXPECT_TRUE(close_scaled(v1.grad(), v2.grad(), grad_tol(dt))) << what << " grad v";
    }
}

TEST(FusedXsa, ATinyValueVectorTakesTheClampedNormsGradient) {
  auto [y1, y2] = twins(test::gaussian({1, 2, 2, 4}, 21, at::kDouble));
  at::Tensor v0 = test::gaussian({1, 2, 1, 4}, 22, at::kDouble);
  v0[0][1].mul_(1e-14);  // |v| below 1e-12 at position 1
  auto [v1, v2] = twins(v0);
  const at::Tensor a = fused_xsa(y1, v1), b = xsa(y2, v2);
  EXPECT_TRUE(close_scaled(a, b.detach(), 1e-10));
  a.sum().backward();
  b.sum().backward();
  EXPECT_TRUE(close_scaled(y1.grad(), y2.grad(), 1e-10));
  EXPECT_TRUE(close_scaled(v1.grad(), v2.grad(), 1e-10));
}

TEST(FusedXsa, GradientsMatchFiniteDifferences) {
  at::Tensor y = test::gaussian({2, 3, 4, 5}, 23, at::kDouble).requires_grad_(true);
  at::Tensor v = test::gaussian({2, 3, 2, 5}, 24, at::kDouble).requires_grad_(true);
  const at::Tensor w = test::gaussian({2, 3, 4, 5}, 25, at::kDouble);
  test::expect_gradients_match_finite_differences([&] { return (fused_xsa(y, v) * w).sum(); }, {&y, &v}, 3, 1e-6);
}

#ifdef PGOLF_WITH_CUDA
namespace {

const at::Device kGpu(at::kCUDA, 0);

// Runs op on CPU and GPU copies of `inputs` (leaves), backpropagates the sum of
// each output times itself (detached), and compares outputs and gradients.
void expect_cuda_matches_cpu(const std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>& op,
                             const std::vector<at::Tensor>& inputs, double t, const std::string& what) {
  std::vector<at::Tensor> cpu, gpu;
  for (const auto& x : inputs) {
    cpu.push_back(x.clone().requires_grad_(true));
    gpu.push_back(x.to(kGpu).requires_grad_(true));
  }
  const auto oc = op(cpu), og = op(gpu);
  at::Tensor lc = at::zeros({}, at::kDouble), lg = at::zeros({}, at::TensorOptions(kGpu).dtype(at::kDouble));
  for (std::size_t i = 0; i < oc.size(); ++i) {
    EXPECT_TRUE(close_scaled(og[i].cpu(), oc[i].detach(), t)) << what << " output " << i;
    lc = lc + (oc[i] * oc[i].detach()).sum().to(at::kDouble);
    lg = lg + (og[i] * og[i].detach()).sum().to(at::kDouble);
  }
  lc.backward();
  lg.backward();
  for (std::size_t i = 0; i < cpu.size(); ++i)
    EXPECT_TRUE(close_scaled(gpu[i].grad().cpu(), cpu[i].grad(), t)) << what << " grad " << i;
}

}  // namespace
#endif

// The CUDA kernels against the CPU loops at the 12L widths (dim 512, head
// dim 64, two heads per KV group) and at dim 1536 (over 48 KiB of shared
// memory in the residual backward), in float32 and bf16.
TEST(FusedBlockKernels, CudaMatchesCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible";
#ifdef PGOLF_WITH_CUDA
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16})
    for (std::int64_t D : {512, 1536}) {
      const std::string what = std::string(c10::toString(dt)) + " dim " + std::to_string(D);
      const double t = dt == at::kFloat ? 1e-4 : 3e-2;
      const at::Tensor x = test::gaussian({3, 700, D}, 26, at::kDouble).to(dt), y = test::gaussian({3, 700, D}, 27, at::kDouble).to(dt);
      const at::Tensor p = test::gaussian({D}, 28) + 1, q = test::gaussian({D}, 29);
      expect_cuda_matches_cpu(
          [](const std::vector<at::Tensor>& in) {
            const auto [o, n] = fused_residual_norm(in[0], in[1], in[2], in[3], 0.5);
            return std::vector<at::Tensor>{o, n};
          },
          {x, y, p, q}, t, what + " residual");
      for (bool smear_first : {true, false})
        expect_cuda_matches_cpu(
            [smear_first](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{fused_smear_norm(in[0], in[1], smear_first)}; },
            {x, q}, t, what + (smear_first ? " smear first" : " norm first"));
    }
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    const at::Tensor y = test::gaussian({2, 300, 8, 64}, 30, at::kDouble).to(dt), v = test::gaussian({2, 300, 4, 64}, 31, at::kDouble).to(dt);
    expect_cuda_matches_cpu([](const std::vector<at::Tensor>& in) { return std::vector<at::Tensor>{fused_xsa(in[0], in[1])}; },
                            {y, v}, dt == at::kFloat ? 1e-4 : 3e-2, std::string(c10::toString(dt)) + " xsa");
  }
#endif
}

// The whole model on CUDA with FUSED_KERNELS on and off: the same loss and
// gradients (bf16 activations), with XSA, LN_SCALE and both SmearGate orders.
TEST(FusedBlockKernels, FusedModelMatchesTheAtenModelOnCuda) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible";
  for (bool smear_before_norm : {true, false}) {
    Config c = test::small_model(3, 64);
    c.model.xsa_last_n = 2;
    c.model.ln_scale = true;
    c.model.smear_before_norm = smear_before_norm;
    const ModelOptions opts = model_options_for(at::Device(at::kCUDA, 0));
    GPT aten(c.model, opts);
    ModelOptions fused_opts = opts;
    fused_opts.fused_kernels = true;
    GPT fused(c.model, fused_opts);
    test::randomise(aten, 32);
    test::randomise(fused, 32);
    const at::Tensor x = test::tokens(2, 48, c.model.vocab_size, 33).to(opts.device), y = test::tokens(2, 48, c.model.vocab_size, 34).to(opts.device);
    const at::Tensor la = aten.loss(x, y), lf = fused.loss(x, y);
    EXPECT_NEAR(lf.item<double>(), la.item<double>(), 2e-2 * std::abs(la.item<double>())) << smear_before_norm;
    la.backward();
    lf.backward();
    for (std::size_t i = 0; i < aten.parameters().size(); ++i) {
      const auto& pa = aten.parameters()[i];
      EXPECT_TRUE(close_scaled(fused.parameters()[i].tensor.grad().cpu(), pa.tensor.grad().cpu(), 8e-2)) << pa.name;
    }
  }
}
