// The CUDA path against the CPU: the model in bf16, the optimisers,
// Newton-Schulz, the sliding evaluation, training through export, NCCL, the
// non-blocking transfers, and a training step that never makes the host wait.
// Each test is skipped where no GPU is visible (and the bf16 model test also
// runs on the CPU, which checks its tolerances everywhere).
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <cmath>

#include "helpers.h"
#include "pgolf/dist/dist.h"
#include "pgolf/core/runtime.h"
#include "pgolf/eval/eval.h"
#include "pgolf/kernels/fused.h"
#include "pgolf/model/model.h"
#include "pgolf/optim/optim.h"
#include "pgolf/train/step.h"
#include "pgolf/export/submission.h"
#include "pgolf/train/train.h"
#include "pgolf/train/transfer.h"
#include "tiny_corpus.h"

#ifdef PGOLF_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

using namespace pgolf;
using test::gaussian;
using test::ns_reference;
using test::TempDir;

#define REQUIRE_CUDA() \
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device visible"

namespace {

const at::Device kGpu(at::kCUDA, 0);

Config small_config() {
  Config c = test::small_model(2, 64);
  c.model.vocab_size = test::kTinyVocab;
  c.model.bigram_vocab_size = 128;
  c.model.bigram_dim = 32;
  c.train.train_seq_len = 64;
  c.train.train_batch_tokens = 8 * 2 * 64;
  c.model.xsa_last_n = 1;
  return c;
}

void copy_weights(const GPT& from, GPT& to) {
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < from.parameters().size(); ++i)
    to.parameters()[i].tensor.detach().copy_(from.parameters()[i].tensor.detach());
}

at::Tensor tokens(std::int64_t B, std::int64_t T, std::uint64_t seed) { return test::tokens(B, T, test::kTinyVocab, seed); }

// ||a - b||_F / ||b||_F in float64.
double rel_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.detach().cpu().to(at::kDouble), y = b.detach().cpu().to(at::kDouble);
  return ((x - y).norm() / y.norm()).item<double>();
}

// The bf16 model on `device` against the float64 model on the CPU. bf16
// keeps 8 significant bits (a relative rounding of up to 2^-9 = 0.2% per
// operation); through two blocks the loss agrees to 1%, and each matrix's
// gradient to 10% of its norm (relative Frobenius error). The gradient of a
// scalar or a vector (gates, scales) is a sum over every position that
// cancels to a small part of its terms, so its bf16 error is set by the terms,
// not by the result (seen here: bigram.scale 8.9e-5 in float64, 7.7e-4 in
// bf16); those are checked together, as one vector, to 10%. Measured with
// bf16 on the CPU: loss 0.01% off, matrices 1.3-2.5%, the rest 2.0%. A wrong
// kernel, a missing term or a wrong cast is off by far more.
void expect_bf16_matches_float64(const at::Device& device) {
  const Config cfg = small_config();
  GPT ref(cfg.model, {at::kCPU, at::kDouble, at::kDouble});
  test::randomise(ref, 1, 0.1);
  GPT low(cfg.model, {device, at::kFloat, at::kBFloat16});
  copy_weights(ref, low);
  const at::Tensor x = tokens(4, cfg.train.train_seq_len, 2), y = tokens(4, cfg.train.train_seq_len, 3);
  at::Tensor l_ref = ref.loss(x, y), l_low = low.loss(x.to(device), y.to(device));
  l_ref.backward();
  l_low.backward();
  EXPECT_NEAR(l_low.item<double>(), l_ref.item<double>(), 1e-2 * l_ref.item<double>());
  std::vector<at::Tensor> small_ref, small_low;
  for (std::size_t i = 0; i < ref.parameters().size(); ++i) {
    const auto& p = ref.parameters()[i];
    const at::Tensor& g = low.parameters()[i].tensor.grad();
    ASSERT_TRUE(g.defined()) << p.name;
    if (p.tensor.dim() == 2) {
      EXPECT_LT(rel_error(g, p.tensor.grad()), 0.1) << p.name;
    } else {
      small_ref.push_back(p.tensor.grad().reshape({-1}));
      small_low.push_back(g.cpu().to(at::kDouble).reshape({-1}));
    }
  }
  EXPECT_LT(rel_error(at::cat(small_low), at::cat(small_ref)), 0.1) << "scalars and vectors together";
}

}  // namespace

TEST(Bf16, ModelForwardBackwardOnCpuMatchesFloat64) { expect_bf16_matches_float64(at::kCPU); }

TEST(Cuda, ModelForwardBackwardInBf16MatchesFloat64Cpu) {
  REQUIRE_CUDA();
  expect_bf16_matches_float64(kGpu);
}

// Float32 on the CPU against Gaussian matrices of the 12-layer model's
// shapes: bf16 Newton-Schulz was measured at 2.2-2.6% relative Frobenius
// error against float64 (on the CPU); the GPU must stay within 5%.
TEST(Cuda, NewtonSchulzInBf16MatchesFloat64) {
  REQUIRE_CUDA();
  for (std::vector<std::int64_t> shape : {std::vector<std::int64_t>{512, 512}, {256, 512}, {1536, 512}, {512, 1536}}) {
    const at::Tensor G = gaussian(shape, shape[0] + 3 * shape[1]);
    const at::Tensor X = newton_schulz5(G.to(kGpu), 5, at::kBFloat16);
    EXPECT_EQ(X.scalar_type(), at::kBFloat16);
    EXPECT_LT(rel_error(X, ns_reference(G, 5)), 0.05) << shape[0] << "x" << shape[1];
    // Batched, each matrix gets the same treatment.
    const at::Tensor B = newton_schulz5(at::stack({G, G}).to(kGpu), 5, at::kBFloat16);
    EXPECT_LT(rel_error(B[1], ns_reference(G, 5)), 0.05) << "batched " << shape[0] << "x" << shape[1];
  }
}

// Three steps of Muon (bf16 Newton-Schulz on CUDA, float32 on CPU) and both
// AdamWs, from the same weights and gradients: Muon's updates agree to the
// bf16 Newton-Schulz error (5%), AdamW's to float32 rounding.
TEST(Cuda, OptimizerStepsMatchCpu) {
  REQUIRE_CUDA();
  const Config cfg = small_config();
  GPT cpu(cfg.model, model_options_for(at::kCPU)), gpu(cfg.model, model_options_for(kGpu));
  test::randomise(cpu, 4, 0.1);
  copy_weights(cpu, gpu);
  std::vector<at::Tensor> before;
  for (const auto& p : cpu.parameters()) before.push_back(p.tensor.detach().clone());
  Optimizers o_cpu(cpu, cfg.optim, ns_dtype_for(at::kCPU)), o_gpu(gpu, cfg.optim, ns_dtype_for(kGpu));
  for (int step = 0; step < 3; ++step) {
    for (std::size_t i = 0; i < cpu.parameters().size(); ++i) {
      const at::Tensor g = gaussian(cpu.parameters()[i].tensor.sizes(), 100 * step + i);
      cpu.parameters()[i].tensor.mutable_grad() = g.clone();
      gpu.parameters()[i].tensor.mutable_grad() = g.to(kGpu);
    }
    o_cpu.step(step, 1.0);
    o_gpu.step(step, 1.0);
  }
  for (std::size_t i = 0; i < cpu.parameters().size(); ++i) {
    const auto& p = cpu.parameters()[i];
    const at::Tensor d_cpu = p.tensor.detach() - before[i], d_gpu = gpu.parameters()[i].tensor.detach().cpu() - before[i];
    const bool muon = param_group(p.name, p.tensor) == ParamGroup::Muon;
    EXPECT_LT(rel_error(d_gpu, d_cpu), muon ? 0.05 : 1e-4) << p.name;
  }
}

// The sliding evaluation in float32 on CUDA and on the CPU: the same windows,
// the same targets and bytes exactly, the summed NLL to float32 rounding.
TEST(Cuda, SlidingEvaluationMatchesCpu) {
  REQUIRE_CUDA();
  const Config cfg = small_config();
  GPT cpu(cfg.model, model_options_for(at::kCPU)), gpu(cfg.model, {kGpu, at::kFloat, at::kFloat});
  test::randomise(cpu, 5, 0.1);
  copy_weights(cpu, gpu);
  const at::Tensor val = tokens(1, 3001, 6).reshape({-1});
  const ByteLuts luts = build_byte_luts(test::tiny_tokenizer(), test::kTinyVocab);
  const EvalSums a = evaluate_sliding(cpu, val, test::lut_bytes(val, luts), 64, 16, 8);
  const EvalSums b = evaluate_sliding(gpu, val.to(kGpu), test::lut_bytes(val.to(kGpu), luts), 64, 16, 8);
  EXPECT_EQ(b.tokens, a.tokens);
  EXPECT_EQ(b.bytes, a.bytes);
  EXPECT_NEAR(b.nll, a.nll, 1e-5 * a.nll);
}

// A short run on CUDA through export: the artifact decodes on the CPU into
// the very weights it decodes to on the GPU, and scoring it on the CPU (fp32)
// agrees with the run's own round-trip score (bf16) to 1%.
TEST(Cuda, TrainedOnCudaExportDecodesOnCpu) {
  REQUIRE_CUDA();
  TempDir dir;
  Config c = test::tiny_run(dir, 20);
  c.runtime.device = "cuda";
  RunLog log(c, RunLog::Mode::Silent);
  const TrainResult r = train(c, log);
  ASSERT_TRUE(std::isfinite(r.score.val_bpb()));
  GPT on_cpu(c.model, model_options_for(at::kCPU)), on_gpu(c.model, model_options_for(kGpu));
  load_model_file(on_cpu, r.exported.path);
  load_model_file(on_gpu, r.exported.path);
  for (std::size_t i = 0; i < on_cpu.parameters().size(); ++i)
    EXPECT_TRUE(at::equal(on_gpu.parameters()[i].tensor.detach().cpu(), on_cpu.parameters()[i].tensor.detach()))
        << on_cpu.parameters()[i].name;
  Dist single;
  const EvalSums e = sliding_score(on_cpu, c.eval, load_scoring_data(c, at::kCPU), log, "cpu_decode", single).sums;
  EXPECT_NEAR(e.val_bpb(), r.score.val_bpb(), 1e-2 * r.score.val_bpb());
}

// A process group of one rank over NCCL: the collectives run (a sum over one
// rank is the identity) and complete on the stream, the barrier on the host.
TEST(Cuda, NcclGroupOfOneRankAllReduces) {
  REQUIRE_CUDA();
  LaunchInfo info;
  info.master_port = 20000 + static_cast<int>(::getpid() % 20000) + 7;
  Dist dist(info, kGpu, std::chrono::seconds(60));
  at::Tensor t = at::arange(8, at::TensorOptions().dtype(at::kFloat).device(kGpu));
  dist.all_reduce_sum(t, "test sum");
  at::Tensor m = t.clone();
  dist.all_reduce_max(m, "test max");
  auto pending = dist.all_reduce_sum_async(t);
  dist.wait(pending, "test async sum");
  dist.barrier("test barrier");
  EXPECT_TRUE(at::equal(t.cpu(), at::arange(8, at::kFloat)));
  EXPECT_TRUE(at::equal(m.cpu(), at::arange(8, at::kFloat)));
}

// On CUDA the prefetched batches are the loader's, and a readback sees the
// value of the work queued before it.
TEST(Cuda, PrefetchedBatchesAndReadbacksHoldTheRightValues) {
  REQUIRE_CUDA();
  TempDir dir;
  std::vector<std::uint16_t> stream(20000);
  for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::uint16_t>(i % 397);
  write_shard(dir.file("fineweb_train_000000.bin"), stream);
  const auto files = shard_files(train_pattern(dir.path()));
  DistributedTokenLoader reference(files, 0, 1), loader(files, 0, 1);
  BatchPrefetcher batches(loader, {1024, 64, 8}, kGpu);
  for (int k = 0; k < 4; ++k) {
    const Batch b = reference.next_batch(1024, 64, 8);
    auto [x, y] = batches.next();
    EXPECT_TRUE(x.is_cuda());
    EXPECT_TRUE(at::equal(x.cpu().reshape({-1}), at::tensor(b.inputs, at::kLong))) << k;
    EXPECT_TRUE(at::equal(y.cpu().reshape({-1}), at::tensor(b.targets, at::kLong))) << k;
  }
  at::Tensor big = at::ones({4096, 4096}, at::TensorOptions().device(kGpu));
  at::Tensor v = at::stack({big.matmul(big).sum(), at::full({}, 2.5, big.options())});
  AsyncReadback r(v);
  big.matmul(big);  // queued after the copy; values() need not wait for it
  const std::vector<double> got = r.values();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_DOUBLE_EQ(got[0], 4096.0 * 4096.0 * 4096.0);
  EXPECT_DOUBLE_EQ(got[1], 2.5);
}

#ifdef PGOLF_WITH_CUDA
// With CUDA's sync debug mode set to error, any ATen operation that makes the
// host wait for the GPU (.item(), a copy to pageable memory, nonzero, ...)
// throws. A training step, with QAT off and on, and a step report must queue
// without one.
TEST(Cuda, TrainingStepQueuesWithoutHostSync) {
  REQUIRE_CUDA();
  TempDir dir;
  std::vector<std::uint16_t> stream(100000);
  for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::uint16_t>((i * 7919) % 397);
  write_shard(dir.file("fineweb_train_000000.bin"), stream);
  const Config cfg = small_config();
  GPT model(cfg.model, model_options_for(kGpu));
  Optimizers opt(model, cfg.optim, ns_dtype_for(kGpu));
  DistributedTokenLoader loader(shard_files(train_pattern(dir.path())), 0, 1);
  BatchPrefetcher batches(loader, {cfg.train.train_batch_tokens, cfg.train.train_seq_len, 8}, kGpu);
  TrainStep step(model, opt, 8, nullptr);
  const NextBatch next = [&] { return batches.next(); };
  step.run(next, 0, 1.0);  // first use: handles, workspaces
  model.set_qat(true);
  step.run(next, 1, 1.0);
  model.set_qat(false);
  c10::cuda::device_synchronize();
  auto& debug = c10::cuda::warning_state();
  for (bool qat : {false, true}) {
    model.set_qat(qat);
    debug.set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
    try {
      for (int s = 2; s < 5; ++s) {
        at::Tensor loss = step.run(next, s, 0.5);
        AsyncReadback report(at::stack({loss.to(at::kDouble), at::full({}, 1.0, loss.options().dtype(at::kDouble))}));
      }
      debug.set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
    } catch (const std::exception& e) {
      debug.set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
      ADD_FAILURE() << "host sync in a training step (qat " << qat << "): " << e.what();
    }
  }
}
#endif

// CUDA_GRAPHS: steps replayed from CUDA graphs (one per QAT mode) against
// eager steps from the same weights and batches, with the LR and Muon
// momentum changing at every step (read by the graph from device tensors).
TEST(Cuda, CapturedStepsMatchEagerSteps) {
  REQUIRE_CUDA();
  Config cfg = small_config();
  cfg.optim.muon_momentum_warmup_steps = 4;
  GPT eager_model(cfg.model, model_options_for(kGpu)), graph_model(cfg.model, model_options_for(kGpu));
  copy_weights(eager_model, graph_model);
  Optimizers eager_opt(eager_model, cfg.optim, ns_dtype_for(kGpu)), graph_opt(graph_model, cfg.optim, ns_dtype_for(kGpu));
  std::vector<std::string> notes;
  TrainStep eager(eager_model, eager_opt, 2, nullptr);
  TrainStep graphs(graph_model, graph_opt, 2, nullptr, cuda_graph_recorder(kGpu),
                   [&](const std::string& n) { notes.push_back(n); });
  for (int s = 0; s < 7; ++s) {
    const bool qat = s >= 3;
    eager_model.set_qat(qat);
    graph_model.set_qat(qat);
    std::uint64_t k = 0;
    const NextBatch next = [&] {
      ++k;
      return MicroBatch{tokens(2, cfg.train.train_seq_len, 1000 * s + k).to(kGpu), tokens(2, cfg.train.train_seq_len, 2000 * s + k).to(kGpu)};
    };
    const double mult = 1.0 - 0.1 * s;
    const double a = eager.run(next, s, mult).item<double>();
    k = 0;
    const double b = graphs.run(next, s, mult).item<double>();
    EXPECT_NEAR(a, b, 1e-4 * std::abs(a)) << "step " << s;
  }
  EXPECT_TRUE(graphs.graphs());
  EXPECT_EQ(graphs.captured_modes(), 2u);
  ASSERT_EQ(notes.size(), 2u) << (notes.empty() ? "" : notes.back());
  for (std::size_t i = 0; i < eager_model.parameters().size(); ++i)
    EXPECT_LT(rel_error(graph_model.parameters()[i].tensor, eager_model.parameters()[i].tensor), 1e-4)
        << eager_model.parameters()[i].name;
}

// A capture that breaks off (a host read inside) throws, and afterwards the
// device runs eager work as before.
TEST(Cuda, AFailedCaptureLeavesTheDeviceUsable) {
  REQUIRE_CUDA();
  auto recorder = cuda_graph_recorder(kGpu);
  at::Tensor x = at::ones({64, 64}, at::TensorOptions().device(kGpu));
  recorder->warm([&] { x.matmul(x); });
  EXPECT_ANY_THROW(recorder->capture([&] { (void)x.matmul(x).sum().item<float>(); }));
  EXPECT_FLOAT_EQ(x.matmul(x).sum().item<float>(), 64.0f * 64.0f * 64.0f);
}

#if defined(PGOLF_WITH_CUDA) && PGOLF_HAS_CUDA_KERNELS
// The fused kernels of this build have an image for the visible GPU (its
// architecture is in TORCH_CUDA_ARCH_LIST, or the PTX covers it), so
// FUSED_KERNELS=1 starts; the list `pgolf info` prints is the one built.
TEST(Cuda, FusedKernelsHaveAnImageForThisGpu) {
  REQUIRE_CUDA();
  EXPECT_EQ(cuda_kernels_unavailable(0), "");
  EXPECT_NO_THROW(check_fused_kernels_run_on(kGpu));
  EXPECT_NE(std::string(cuda_kernel_architectures()).find("9.0"), std::string::npos) << cuda_kernel_architectures();
  EXPECT_NE(runtime_info().find(std::string("cuda kernels: built for compute capabilities ") + cuda_kernel_architectures()),
            std::string::npos);
}
#endif
