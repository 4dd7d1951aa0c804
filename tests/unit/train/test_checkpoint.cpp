// Checkpoints: the file's round trip and its rejection of damaged files, the
// configuration check, resuming in process and under a wall-clock cap.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "helpers.h"
#include "pgolf/train/checkpoint.h"
#include "pgolf/train/fingerprint.h"
#include "pgolf/core/io.h"
#include "pgolf/train/train.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::same_bits;
using test::same_weights;
using test::TempDir;

namespace {

TrainState sample_state() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  TrainState s;
  s.step = 123;
  s.agreed_step = 122;
  s.stop_after = -1;
  s.swa_count = 3;
  s.train_ms = 0.1 + 0.2;  // doubles that no short decimal writes exactly
  s.agreed_ms = 1.0 / 3.0 * 1e5;
  s.first_step_ms = 5e-324;
  s.qat = true;
  s.looped = false;
  s.data = {2, 98765};
  s.weights = {{"tok_emb.weight", at::normal(0.0, 1.0, {6, 4}, gen, at::kFloat)},
               {"blocks.0.attn_scale", at::full({4}, -0.0f)}};
  s.optimizer = {at::normal(0.0, 1.0, {6, 4}, gen, at::kFloat), at::full({}, 17.0f), at::zeros({0, 3})};
  for (int i = 0; i < 11; ++i) s.optimizer.push_back(at::full({2}, float(i)));  // optim.10 sorts before optim.2
  s.swa_sum = {at::normal(0.0, 1.0, {6, 4}, gen, at::kFloat), at::ones({4})};
  s.ema = {at::normal(0.0, 1.0, {6, 4}, gen, at::kBFloat16)};
  s.world_size = 2;
  s.device = "cpu";
  Config run;  // a run's checkpoint holds its values with the derived defaults resolved
  fill_derived(run);
  s.config = config_values(run);
  s.inputs = {{"data.fineweb_val_000000.bin", "bytes:1052 crc32:77"}, {"tokenizer", "bytes:9000 crc32:4"}};
  return s;
}

bool same(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].scalar_type() != b[i].scalar_type() || !at::equal(a[i], b[i])) return false;
  return true;
}

std::string load_error(const std::string& path) {
  try {
    load_checkpoint(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// sample_state() written with its metadata and tensors changed by `edit`.
std::string damaged(const TempDir& dir, const std::string& name,
                    const std::function<void(std::map<std::string, std::string>&, std::vector<NamedTensor>&)>& edit) {
  const std::string good = dir.file("good.safetensors");
  save_checkpoint(good, sample_state());
  std::map<std::string, std::string> meta;
  auto tensors = load_safetensors(good, &meta);
  edit(meta, tensors);
  save_safetensors(dir.file(name), tensors, meta);
  return dir.file(name);
}

std::string resume_error(const TrainState& s, const Config& c, int world = 2, const std::string& device = "cpu",
                         const std::map<std::string, std::string>& inputs = sample_state().inputs) {
  try {
    check_resumable(s, c, world, device, inputs);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Checkpoint, RoundTripKeepsEveryBit) {
  TempDir dir;
  const TrainState in = sample_state();
  save_checkpoint(dir.file("c.safetensors"), in);
  const TrainState out = load_checkpoint(dir.file("c.safetensors"));
  EXPECT_EQ(out.path, dir.file("c.safetensors"));
  EXPECT_EQ(out.step, in.step);
  EXPECT_EQ(out.agreed_step, in.agreed_step);
  EXPECT_EQ(out.stop_after, in.stop_after);
  EXPECT_EQ(out.swa_count, in.swa_count);
  EXPECT_EQ(std::memcmp(&out.train_ms, &in.train_ms, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(&out.agreed_ms, &in.agreed_ms, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(&out.first_step_ms, &in.first_step_ms, sizeof(double)), 0);
  EXPECT_EQ(out.qat, in.qat);
  EXPECT_EQ(out.looped, in.looped);
  EXPECT_TRUE(out.data == in.data);
  EXPECT_EQ(out.world_size, 2);
  EXPECT_EQ(out.device, "cpu");
  EXPECT_EQ(out.config, in.config);
  EXPECT_EQ(out.inputs, in.inputs);
  ASSERT_EQ(out.weights.size(), in.weights.size());
  for (const auto& w : in.weights) {
    bool found = false;
    for (const auto& o : out.weights)
      if (o.name == w.name) found = same_bits(o.tensor, w.tensor);
    EXPECT_TRUE(found) << w.name;
  }
  EXPECT_TRUE(same(out.optimizer, in.optimizer));
  EXPECT_TRUE(same(out.swa_sum, in.swa_sum));
  EXPECT_TRUE(same(out.ema, in.ema));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))  // no temp file left
    EXPECT_EQ(entry.path().filename().string(), "c.safetensors");
}

TEST(Checkpoint, DamagedOrForeignFilesAreRejectedNamingFileAndFault) {
  TempDir dir;
  save_checkpoint(dir.file("c.safetensors"), sample_state());
  const std::string bytes = read_file(dir.file("c.safetensors"));
  // Cut anywhere: the header, the JSON, the tensor data.
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{8}, std::size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    test::write_text(dir.file("cut.safetensors"), bytes.substr(0, cut));
    const std::string e = load_error(dir.file("cut.safetensors"));
    EXPECT_NE(e.find(dir.file("cut.safetensors")), std::string::npos) << cut << ": " << e;
  }
  save_safetensors(dir.file("weights.safetensors"), sample_state().weights, {{"format", "pt"}});
  EXPECT_NE(load_error(dir.file("weights.safetensors")).find("not a pgolf checkpoint"), std::string::npos);

  using Meta = std::map<std::string, std::string>;
  using Tensors = std::vector<NamedTensor>;
  const std::vector<std::pair<std::function<void(Meta&, Tensors&)>, std::string>> cases = {
      {[](Meta& m, Tensors&) { m["version"] = "2"; }, "version '2', this pgolf reads version 1"},
      {[](Meta& m, Tensors&) { m.erase("agreed_ms"); }, "metadata lacks 'agreed_ms'"},
      {[](Meta& m, Tensors&) { m["step"] = "12x"; }, "metadata 'step' is '12x', not an integer"},
      {[](Meta& m, Tensors&) { m["step"] = "0"; }, "metadata 'step' is '0', not in [1, "},
      {[](Meta& m, Tensors&) { m["agreed_step"] = "124"; }, "metadata 'agreed_step' is '124', not in [0, 123]"},
      {[](Meta& m, Tensors&) { m["train_ms"] = "nan"; }, "metadata 'train_ms' is 'nan', not a finite number >= 0"},
      {[](Meta& m, Tensors&) { m["qat"] = "yes"; }, "metadata 'qat' is 'yes', not an integer"},
      {[](Meta& m, Tensors&) { m["world_size"] = "16"; }, "metadata 'world_size' is '16', not in [1, 8]"},
      {[](Meta& m, Tensors&) { m["device"] = "tpu"; }, "metadata 'device' is 'tpu', not cpu or cuda"},
      {[](Meta& m, Tensors&) { m["optim_tensors"] = "15"; }, "lacks tensor 'optim.14' (optim_tensors=15)"},
      {[](Meta& m, Tensors&) { m["swa_count"] = "0"; }, "swa_count=0 but 2 SWA tensors"},
      {[](Meta& m, Tensors&) { m["colour"] = "blue"; }, "unknown metadata entry 'colour'"},
      {[](Meta&, Tensors& t) { t.push_back({"optim.99", at::ones({1})}); }, "holds an unexpected tensor 'optim.99'"},
      {[](Meta& m, Tensors& t) {
         Tensors kept;
         for (auto& x : t)
           if (x.name.rfind("model.", 0) != 0) kept.push_back(x);
         t = kept;
       },
       "holds no model weights"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string path = damaged(dir, "case" + std::to_string(i) + ".safetensors", cases[i].first);
    const std::string e = load_error(path);
    EXPECT_NE(e.find("bad checkpoint '" + path + "': " + cases[i].second), std::string::npos) << e;
  }
  // One bit flipped in the last tensor's data, or a digit changed in a
  // metadata value: the file still parses, and the checksum says it changed.
  std::string flipped = bytes;
  flipped[flipped.size() - 3] ^= 0x10;
  test::write_text(dir.file("flipped.safetensors"), flipped);
  std::string e = load_error(dir.file("flipped.safetensors"));
  EXPECT_NE(e.find("bad checkpoint '" + dir.file("flipped.safetensors") + "': checksum mismatch"), std::string::npos) << e;
  const std::string path = damaged(dir, "edited.safetensors", [](Meta& m, Tensors&) { m["data_offset"] += "1"; });
  e = load_error(path);
  EXPECT_NE(e.find("bad checkpoint '" + path + "': checksum mismatch"), std::string::npos) << e;
}

TEST(Checkpoint, ResumeIsRefusedWhereTheRunWouldDiffer) {
  TrainState s = sample_state();
  Config c;
  EXPECT_EQ(resume_error(s, c), "");
  c.run.run_id = "elsewhere";  // where files go, what is logged when, checkpoints, timeouts: no difference
  c.run.log_dir = "/tmp/x";
  c.train.checkpoint_every = 7;
  c.train.checkpoint_minutes = 2.5;
  c.train.train_log_every = 3;
  c.train.val_loss_every = 0;
  c.runtime.dist_timeout_seconds = 9;
  c.runtime.progress = "off";
  c.run.data_path = "/elsewhere";  // the data and tokenizer are compared by content
  c.run.tokenizer_path = "/elsewhere/tok.model";
  EXPECT_EQ(resume_error(s, c), "");
  c.optim.matrix_lr = 0.03;
  c.model.num_layers = 3;
  std::string e = resume_error(s, c);
  EXPECT_NE(e.find("cannot resume from '" + s.path + "'"), std::string::npos) << e;
  EXPECT_NE(e.find("NUM_LAYERS (checkpoint '12', now '3')"), std::string::npos) << e;
  EXPECT_NE(e.find("MATRIX_LR (checkpoint '0.025', now '0.03')"), std::string::npos) << e;
  EXPECT_EQ(e.find("RUN_ID"), std::string::npos) << e;
  c = Config{};
  EXPECT_NE(resume_error(s, c, 1).find("the world size (checkpoint 2 processes, now 1)"), std::string::npos);
  std::map<std::string, std::string> inputs = s.inputs;
  inputs["tokenizer"] = "bytes:9000 crc32:5";
  inputs["data.fineweb_train_000001.bin"] = "bytes:10 crc32:1";
  e = resume_error(s, c, 2, "cpu", inputs);
  EXPECT_NE(e.find("the content of tokenizer (checkpoint 'bytes:9000 crc32:4', now 'bytes:9000 crc32:5')"), std::string::npos) << e;
  EXPECT_NE(e.find("the content of data.fineweb_train_000001.bin (checkpoint 'none', now 'bytes:10 crc32:1')"), std::string::npos) << e;
  TrainState older = s;  // a checkpoint without inputs compares the paths
  older.inputs.clear();
  c.run.data_path = "/elsewhere";
  EXPECT_NE(resume_error(older, c).find("DATA_PATH (checkpoint './data/datasets/fineweb10B_sp1024', now '/elsewhere')"), std::string::npos) << resume_error(older, c);
  EXPECT_NE(resume_error(s, c, 2, "cuda").find("the device (checkpoint cpu, now cuda)"), std::string::npos);
  s.config.erase("SEED");
  s.config["OLD_KEY"] = "1";
  e = resume_error(s, c);
  EXPECT_NE(e.find("SEED (not in the checkpoint; now '1337')"), std::string::npos) << e;
  EXPECT_NE(e.find("OLD_KEY (in the checkpoint, unknown to this pgolf)"), std::string::npos) << e;
}

// Checkpoints, however often, leave the run as it was: the same weights as
// without any (CHECKPOINT_MINUTES this small writes one after every step, and
// makes every step report its time).
TEST(Checkpoint, WritingCheckpointsLeavesTheRunAsItWas) {
  TempDir dir;
  Config c = test::tiny_run(dir, 8);
  c.run.run_id = "plain";
  c.eval.prequant_eval = false;
  RunLog plain_log(c);
  const std::string plain = train(c, plain_log).weights_path;
  c.run.run_id = "often";
  c.train.checkpoint_minutes = 1e-9;
  RunLog often_log(c);
  const std::string often = train(c, often_log).weights_path;
  EXPECT_TRUE(same_weights(plain, often));
  const std::string log = read_file(dir.file("often/train.log"));
  EXPECT_NE(log.find("checkpoint: step:1 " + dir.file("often/checkpoint.safetensors")), std::string::npos) << log;
  EXPECT_NE(log.find("checkpoint: step:7 "), std::string::npos) << log;
  EXPECT_EQ(log.find("checkpoint: step:8 "), std::string::npos) << "the last step needs none";
}

// In one process: a run of 12 steps checkpoints after step 6 (SWA and warm-up
// on); a second run resumed from that file, with the data copied to another
// folder, ends with the same weights.
TEST(Checkpoint, ResumedInProcessTheRunEndsWithTheSameWeights) {
  TempDir dir;
  Config c = test::tiny_run(dir, 12);
  c.train.warmup_steps = 2;
  c.schedule.warmdown_iters = 12;
  c.averaging.swa_start_frac = 0.8;  // snapshots from step 4 on
  c.averaging.swa_step_index = SwaStepIndex::Done;
  c.train.checkpoint_every = 6;
  c.eval.prequant_eval = false;
  c.run.run_id = "whole";
  RunLog whole_log(c);
  const std::string whole = train(c, whole_log).weights_path;
  const TrainState s = load_checkpoint(dir.file("whole/checkpoint.safetensors"));
  EXPECT_EQ(s.step, 6);
  EXPECT_EQ(s.swa_count, 2);  // after steps 4 and 6
  c.run.run_id = "resumed";
  EXPECT_EQ(s.inputs, input_identity(c));
  // The same data under another path: the checkpoint knows it by content.
  std::filesystem::copy(c.run.data_path, dir.file("moved"));
  c.run.data_path = dir.file("moved");
  check_resumable(s, c, 1, "cpu", input_identity(c));
  RunLog resumed_log(c);
  const std::string resumed = train(c, resumed_log, &s).weights_path;
  EXPECT_TRUE(same_weights(whole, resumed));
  EXPECT_NE(read_file(dir.file("resumed/train.log")).find("resumed from step 6 (" + s.path + ")"), std::string::npos);
}

// Under a wall-clock cap the resumed run goes on with the checkpoint's
// training time: resumed from the last checkpoint of a capped run (one after
// every step), it trains for what was left of the cap, not for a whole cap.
TEST(Checkpoint, UnderACapTheResumedRunContinuesTheTrainingClock) {
  TempDir dir;
  Config c = test::tiny_run(dir, 100000);
  c.schedule.max_wallclock_seconds = 6;  // several steps even on a loaded machine, where the first may take 2 s
  c.train.checkpoint_every = 1;
  c.eval.prequant_eval = false;
  c.runtime.num_threads = 1;
  RunLog log(c);
  const TrainResult first = train(c, log);
  ASSERT_LT(first.steps, c.schedule.iterations);
  const TrainState s = load_checkpoint(dir.file("run/checkpoint.safetensors"));
  EXPECT_GE(s.step, first.steps - 1);
  EXPECT_GT(s.train_ms, 3000);  // past half the cap
  RunLog again(c);
  const TrainResult resumed = train(c, again, &s);
  // The run ends after the step that the agreed clock (the last agreed time
  // plus its average step time) puts at the cap: within one step of it.
  const double step_ms = (s.agreed_ms - s.first_step_ms) / static_cast<double>(s.agreed_step - 1);
  EXPECT_GE(resumed.train_time_ms, 6000 - step_ms);
  // From zero it would train about as many steps again as the first run did.
  EXPECT_LE(resumed.steps - s.step, std::max<std::int64_t>(2, first.steps / 2)) << "the clock started again from zero";
}

