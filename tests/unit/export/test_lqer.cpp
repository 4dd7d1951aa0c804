// LQER: the low-rank correction against an independent rank-r bound, its
// stored format, its exact round trip, and its place in the fitted export.
#include <gtest/gtest.h>

#include <cmath>

#include "helpers.h"
#include "pgolf/export/artifact.h"
#include "pgolf/export/fit.h"
#include "pgolf/export/lqer.h"
#include "pgolf/export/quant.h"

using namespace pgolf;
using test::TempDir;

namespace {

// The r largest eigenvalues of the symmetric PSD matrix M by power iteration
// with deflation, in float64: slow and obviously correct.
std::vector<double> top_eigenvalues(at::Tensor M, int r) {
  std::vector<double> out;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  for (int k = 0; k < r; ++k) {
    at::Tensor v = at::normal(0.0, 1.0, {M.size(0)}, gen, at::kDouble);
    double lambda = 0;
    for (int it = 0; it < 3000; ++it) {
      at::Tensor w = at::mv(M, v);
      lambda = w.norm().item<double>();
      v = w / lambda;
    }
    out.push_back(lambda);
    M = M - lambda * at::outer(v, v);
  }
  return out;
}

double sq_norm(const at::Tensor& x) { return x.to(at::kDouble).pow(2).sum().item<double>(); }

QuantTensor int4_matrix(const at::Tensor& w) {
  return quantize_tensor("blocks.0.mlp.fc.weight", w, TensorPlan(Scheme::IntRow, RowQuantizer{4}), {});
}

}  // namespace

// Eckart–Young: no rank-r correction leaves less than ||E||^2 - sum of the r
// largest sigma^2; the quantised factors must keep most of that gain.
TEST(Lqer, CorrectionIsCloserThanPlainQuantisationAndWithinTheRankBound) {
  const at::Tensor w = test::gaussian({64, 96}, 5) * 0.1;
  QuantTensor q = int4_matrix(w);
  const at::Tensor E = w - dequantize(q);
  const double plain = sq_norm(E);
  for (int r : {1, 4, 8}) {
    const std::vector<double> sigma2 = top_eigenvalues(at::matmul(E.t(), E).to(at::kDouble), r);
    double gain = 0;
    for (double s : sigma2) gain += s;
    const double bound = plain - gain;  // the best any rank-r correction can do

    QuantTensor c = q;
    add_low_rank_correction(c, w, r);
    const double corrected = sq_norm(w - dequantize(c));
    EXPECT_LT(corrected, plain) << r;
    EXPECT_GE(corrected, bound * (1 - 1e-9)) << r;
    // int2 A and int4 B keep at least a third of the rank-r gain here.
    EXPECT_LT(corrected, plain - gain / 3) << r << ": plain " << plain << " bound " << bound;
    std::printf("LQER rank %d: ||W-Q||^2 %.5f, corrected %.5f, rank-%d bound %.5f\n", r, plain, corrected, r, bound);
  }
}

// The stored factors: A in [-2, 1] with one scale max|A|/1.5, B in [-8, 7]
// with one scale per 64 elements max|block|/7.5, and the delta their product.
TEST(Lqer, FactorsAreStoredInTheirRangesWithTheirScales) {
  const at::Tensor E = test::gaussian({40, 70}, 6);
  const LowRankCorrection c = fit_low_rank(E, 3);
  ASSERT_EQ(c.a.numel(), 40 * 3);
  ASSERT_EQ(c.b.numel(), 3 * 70);
  ASSERT_EQ(c.b_scale.numel(), (3 * 70 + 63) / 64);
  EXPECT_GE(c.a.min().item<int>(), -2);
  EXPECT_LE(c.a.max().item<int>(), 1);
  EXPECT_GE(c.b.min().item<int>(), -8);
  EXPECT_LE(c.b.max().item<int>(), 7);
  // max|A| = max over rows and the r columns of |u_k| sigma_k, sign-free.
  const auto [U, S, Vh] = at::linalg_svd(E.to(at::kDouble), false);
  const double max_a = (U.narrow(1, 0, 3) * S.narrow(0, 0, 3)).abs().max().item<double>();
  EXPECT_NEAR(c.a_scale.item<float>(), max_a / 1.5, 1e-3 * max_a);
  const at::Tensor b = Vh.narrow(0, 0, 3).flatten().to(at::kFloat);
  for (std::int64_t k = 0; k < c.b_scale.numel(); ++k) {
    const std::int64_t len = std::min<std::int64_t>(64, b.numel() - 64 * k);
    const double m = b.narrow(0, 64 * k, len).abs().max().item<double>();
    EXPECT_NEAR(c.b_scale[k].item<float>(), m / 7.5, 1e-3 * m) << k;
  }
  // The delta, element by element from the stored integers.
  const at::Tensor d = low_rank_delta(c, 40, 70);
  for (int i : {0, 17, 39})
    for (int j : {0, 33, 69}) {
      double want = 0;
      for (int k = 0; k < 3; ++k)
        want += c.a[i * 3 + k].item<int>() * double(c.a_scale.item<float>()) * c.b[k * 70 + j].item<int>() *
                double(c.b_scale[(k * 70 + j) / 64].item<float>());
      EXPECT_NEAR(d[i][j].item<float>(), want, 1e-5) << i << "," << j;
    }
  EXPECT_THROW(fit_low_rank(E, 41), std::invalid_argument);
  // A zero error gives zero factors, not NaN.
  EXPECT_TRUE(low_rank_delta(fit_low_rank(at::zeros({8, 8}), 2), 8, 8).eq(0).all().item<bool>());
}

TEST(Lqer, ArtifactRoundTripIsExactAndDamagedFactorsAreRejected) {
  TempDir dir;
  const at::Tensor w = test::gaussian({64, 96}, 7) * 0.1;
  QuantTensor q = int4_matrix(w);
  add_low_rank_correction(q, w, 4);
  write_artifact(dir.file("a.pgolf"), {q});
  const std::vector<QuantTensor> back = read_artifact(dir.file("a.pgolf")).tensors;
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].lqer.rank, 4);
  for (auto [x, y] : {std::pair{&q.lqer.a, &back[0].lqer.a}, {&q.lqer.a_scale, &back[0].lqer.a_scale},
                      {&q.lqer.b, &back[0].lqer.b}, {&q.lqer.b_scale, &back[0].lqer.b_scale}})
    EXPECT_TRUE(at::equal(*x, *y));
  EXPECT_TRUE(at::equal(dequantize(back[0]), dequantize(q)));

  // An A value outside [-2, 1] in the payload is an error naming the tensor.
  std::string payload = serialize_tensors({q});
  const std::size_t a_at = payload.size() - (q.lqer.b_scale.numel() * 2 + q.lqer.b.numel() + 2 + q.lqer.a.numel());
  payload[a_at] = 5;
  try {
    deserialize_tensors(payload, "x.pgolf");
    ADD_FAILURE() << "LQER factor 5 accepted";
  } catch (const ArtifactError& e) {
    EXPECT_NE(std::string(e.what()).find("has LQER factors out of range"), std::string::npos) << e.what();
  }
  // A correction cut short.
  EXPECT_THROW(deserialize_tensors(serialize_tensors({q}).substr(0, payload.size() - 3), "x.pgolf"), ArtifactError);
}

// In the export, LQER_TENSORS=n corrects the n integer matrices of largest
// error: the fitter's totals and the artifact's bytes include the factors.
TEST(Lqer, ExportCorrectsTheLargestErrorMatricesAndCountsTheirBytes) {
  Config cfg = test::small_model(2, 64);
  cfg.model.vocab_size = 128;
  cfg.export_.quant_passthrough_numel = 1024;
  GPT m(cfg.model, {});
  std::vector<NamedTensor> weights;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  for (const auto& p : m.parameters())
    weights.push_back({p.name, p.tensor.dim() == 2 ? at::normal(0.0, 0.1, p.tensor.sizes(), gen, at::kFloat) : p.tensor.detach().clone()});
  TempDir dir;
  cfg.run.log_dir = dir.path();
  RunLog log(cfg, RunLog::Mode::Silent);
  FitOptions off;
  off.enabled = false;
  ExportChoice plain{quant_options(cfg.export_, cfg.qat), 0.0};
  ExportChoice lqer = plain;
  lqer.quant.lqer_tensors = 3;
  const FitResult a = fit_export(weights, {}, plain, off, Codec::Zstd, kArtifactHeaderBytes, log);
  const FitResult b = fit_export(weights, {}, lqer, off, Codec::Zstd, kArtifactHeaderBytes, log);

  std::vector<std::pair<double, std::string>> errors;
  for (std::size_t i = 0; i < a.tensors.size(); ++i)
    if (a.tensors[i].plan.scheme == Scheme::IntRow && a.tensors[i].shape.size() == 2)
      errors.push_back({sq_norm(dequantize(a.tensors[i]) - weights[i].tensor), a.tensors[i].name});
  std::sort(errors.rbegin(), errors.rend());
  ASSERT_GT(errors.size(), 3u);
  double sse_a = 0, sse_b = 0;
  int corrected = 0;
  for (std::size_t i = 0; i < b.tensors.size(); ++i) {
    const bool top = std::any_of(errors.begin(), errors.begin() + 3, [&](const auto& e) { return e.second == b.tensors[i].name; });
    EXPECT_EQ(b.tensors[i].lqer.rank > 0, top) << b.tensors[i].name;
    corrected += b.tensors[i].lqer.rank > 0;
    sse_a += sq_norm(dequantize(a.tensors[i]) - weights[i].tensor);
    sse_b += sq_norm(dequantize(b.tensors[i]) - weights[i].tensor);
  }
  EXPECT_EQ(corrected, 3);
  EXPECT_LT(sse_b, sse_a);
  EXPECT_GT(b.packed.size(), a.packed.size());
  EXPECT_EQ(deserialize_tensors(b.payload, "b").size(), b.tensors.size());
}
