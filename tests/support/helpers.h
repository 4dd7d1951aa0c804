// Shared test helpers: a scratch folder and running the pgolf binary.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "pgolf/config/config.h"
#include "pgolf/dist/dist.h"
#include "pgolf/eval/eval.h"
#include "pgolf/model/model.h"
#include "pgolf/model/weights.h"
#include "pgolf/export/quant.h"
#include "pgolf/export/quantizer.h"

namespace pgolf::test {

// A small valid model: `layers` blocks of width `dim`, 2 query heads sharing one KV head.
inline Config small_model(std::int64_t layers, std::int64_t dim) {
  Config c;
  c.model.num_layers = layers;
  c.model.model_dim = dim;
  c.model.num_heads = 2;
  c.model.num_kv_heads = 1;
  return c;
}

// Replaces every parameter of `m` by Gaussian values of std `scale` (plus 1
// for the scales), so no path through the model is trivially zero.
// The QAT quantisers the trainer gives a model of configuration `c`.
inline void use_qat_plan(GPT& m, const Config& c) { m.set_qat_quantizers(qat_quantizers(m, quant_options(c.export_, c.qat))); }

inline void randomise(GPT& m, std::uint64_t seed, double scale = 0.3) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& p : m.parameters())
    p.tensor.detach().copy_(at::normal(0.0, scale, p.tensor.sizes(), gen, at::kDouble) +
                            (p.name.find("scale") != std::string::npos ? 1.0 : 0.0));
}

// Standard normal values of `shape`, seeded.
inline at::Tensor gaussian(at::IntArrayRef shape, std::uint64_t seed, at::ScalarType dt = at::kFloat) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::normal(0.0, 1.0, shape, gen, dt);
}

// The central difference (f(t_i + step) - f(t_i - step)) / (2 step) of the
// float64 scalar f() in element i of `flat` (a view of the tensor f reads).
inline double central_difference(const std::function<at::Tensor()>& f, const at::Tensor& flat, std::int64_t i,
                                 double step = 1e-6) {
  at::NoGradGuard no_grad;
  const double v = flat[i].item<double>();
  flat[i] = v + step;
  const double up = f().item<double>();
  flat[i] = v - step;
  const double down = f().item<double>();
  flat[i] = v;
  return (up - down) / (2 * step);
}

// Central differences at every `stride`-th element of each tensor in
// `params` (leaf tensors), against the gradients that f().backward() leaves
// in them, within tol * max(1, |difference quotient|).
inline void expect_gradients_match_finite_differences(const std::function<at::Tensor()>& f, const std::vector<at::Tensor*>& params,
                                                      std::int64_t stride, double tol) {
  for (at::Tensor* p : params) p->mutable_grad() = at::Tensor();
  f().backward();
  for (std::size_t k = 0; k < params.size(); ++k) {
    const at::Tensor flat = params[k]->detach().view({-1});
    for (std::int64_t i = 0; i < flat.numel(); i += stride) {
      const double fd = central_difference(f, flat, i);
      EXPECT_NEAR(params[k]->grad().view({-1})[i].item<double>(), fd, tol * std::max(1.0, std::abs(fd)))
          << "input " << k << " element " << i;
    }
  }
}

// Token ids [B, T] uniform in [0, V), seeded.
inline at::Tensor tokens(std::int64_t B, std::int64_t T, std::int64_t V, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(V, {B, T}, gen, at::kLong);
}

// Newton-Schulz (classic quintic tuple) written out in float64 from the
// formula in optim.h, independently of the library.
inline at::Tensor ns_reference(const at::Tensor& G, int steps) {
  at::Tensor X = G.to(at::kDouble);
  X = X / (X.norm() + 1e-7);
  const bool tall = X.size(0) > X.size(1);
  if (tall) X = X.t();
  for (int i = 0; i < steps; ++i) {
    at::Tensor A = X.mm(X.t());
    X = 3.4445 * X + (-4.7750 * A + 2.0315 * A.mm(A)).mm(X);
  }
  return tall ? X.t() : X;
}

// A rendezvous port for in-test process groups, distinct per test process.
inline int test_port(int offset = 0) { return 20000 + static_cast<int>(::getpid() % 20000) + offset; }

// Two ranks of a Gloo group in this process, one per thread, each running
// `body`; collectives may wait `timeout` for each other.
inline void run_two_ranks(int port, const std::function<void(Dist&, int)>& body,
                          std::chrono::seconds timeout = std::chrono::seconds(30)) {
  auto rank_main = [&](int rank) {
    LaunchInfo info;
    info.rank = rank;
    info.world_size = 2;
    info.master_port = port;
    Dist dist(info, at::kCPU, timeout);
    body(dist, rank);
  };
  std::thread other(rank_main, 1);
  rank_main(0);
  other.join();
}

// A fresh folder under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pgolf-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The target bytes of a token tensor by the tables (lut_target_bytes), as the
// int32 tensor the evaluations take.
inline at::Tensor lut_bytes(const at::Tensor& val, const ByteLuts& luts) {
  const at::Tensor v = val.cpu().to(at::kLong).contiguous();
  const std::vector<std::uint16_t> ids(v.data_ptr<std::int64_t>(), v.data_ptr<std::int64_t>() + v.numel());
  return to_tensor(lut_target_bytes(ids, luts)).to(val.device());
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

// Runs a bash command line, capturing its output.
inline CommandResult run_shell(const std::string& command) {
  TempDir out;
  std::ofstream(out.file("cmd.sh")) << command << "\n";
  std::string cmd = "bash " + out.file("cmd.sh") + " > " + out.file("log") + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(out.file("log"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, text};
}

// Runs the pgolf binary built alongside the tests with `args` (shell syntax).
inline CommandResult run_pgolf(const std::string& args) { return run_shell(std::string(PGOLF_BINARY) + " " + args); }

// A pid that no longer runs (a child forked, ended and reaped).
inline pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  EXPECT_GT(child, 0);
  EXPECT_EQ(::waitpid(child, nullptr, 0), child);
  return child;
}

// This machine's host name, as temp file names carry it.
inline std::string host_name() {
  char host[256] = {};
  EXPECT_EQ(::gethostname(host, sizeof host - 1), 0);
  return host;
}

// Bit patterns, so that -0.0 differs from 0.0.
inline bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  auto bytes = [](const at::Tensor& t) { return t.contiguous().view({-1}).view(at::kByte); };
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && at::equal(bytes(a), bytes(b));
}

// The tensors of two weights files, bit for bit (the files differ in their run_id).
inline bool same_weights(const std::string& a, const std::string& b) {
  const auto x = load_safetensors(a), y = load_safetensors(b);
  if (x.size() != y.size()) return false;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (x[i].name != y[i].name || !same_bits(x[i].tensor, y[i].tensor)) return false;
  return true;
}

// The per-row quantiser of docs/ARTIFACT.md one element at a time, in plain
// float arithmetic: the clip is the linearly interpolated quantile of the
// sorted |w_r| (as torch.quantile, in float32) or sd_k unbiased standard deviations, the
// scale max(clip / qmax, floor) in float32, and q = clamp(round(clamp(w) /
// scale)) with that float32 scale. Returns q (int8) and the float32 scales.
struct SlowRows {
  at::Tensor q, scale;
};
inline SlowRows slow_quantize_rows(const at::Tensor& w, const RowQuantizer& rq) {
  const at::Tensor w32 = w.detach().to(at::kFloat).contiguous();
  const std::int64_t rows = w32.size(0), cols = w32.size(1);
  const int qmax = (1 << (rq.bits - 1)) - 1, lo = rq.symmetric ? -qmax : -qmax - 1;
  at::Tensor q = at::empty({rows, cols}, at::kChar), scale = at::empty({rows}, at::kFloat);
  auto W = w32.accessor<float, 2>();
  for (std::int64_t r = 0; r < rows; ++r) {
    std::vector<float> a;
    for (std::int64_t c = 0; c < cols; ++c) a.push_back(std::abs(W[r][c]));
    std::sort(a.begin(), a.end());
    // torch.quantile's linear interpolation in the input's float32: rank
    // q * (n - 1), then lerp (which works from the nearer end).
    const float pos = static_cast<float>(rq.clip_q) * static_cast<float>(cols - 1);
    const auto i0 = static_cast<std::size_t>(std::floor(pos)), i1 = std::min(i0 + 1, a.size() - 1);
    const float t = pos - std::floor(pos);
    float clip = t < 0.5f ? a[i0] + t * (a[i1] - a[i0]) : a[i1] - (a[i1] - a[i0]) * (1.0f - t);
    if (rq.sd_k > 0) {
      double mean = 0, var = 0;
      for (std::int64_t c = 0; c < cols; ++c) mean += W[r][c];
      mean /= static_cast<double>(cols);
      for (std::int64_t c = 0; c < cols; ++c) var += (W[r][c] - mean) * (W[r][c] - mean);
      clip = static_cast<float>(rq.sd_k * std::sqrt(var / static_cast<double>(cols - 1)));
    }
    const float floor = rq.floor ? 1.0f / static_cast<float>(qmax) : 1e-12f;
    const float s = std::max(clip / static_cast<float>(qmax), floor);
    scale[r] = s;
    for (std::int64_t c = 0; c < cols; ++c) {
      const float x = std::clamp(W[r][c], -clip, clip);
      const double v = std::nearbyint(x / s);  // round half to even, as torch.round
      q[r][c] = static_cast<std::int8_t>(std::clamp<double>(v, lo, qmax));
    }
  }
  return {q, scale};
}

}  // namespace pgolf::test
