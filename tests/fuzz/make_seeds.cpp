// Writes the seed corpus of every fuzz target with pgolf's own writers:
//   fuzz_seeds tests/fuzz/corpus
// Small valid inputs, one per feature a reader handles; the fuzzer mutates
// them. Deterministic, so the checked-in seeds are exactly what this writes.
#include <ATen/ATen.h>

#include <cstdio>
#include <string>
#include <vector>

#include "pgolf/export/artifact.h"
#include "pgolf/train/checkpoint.h"
#include "pgolf/config/config.h"
#include "pgolf/data/data.h"
#include "pgolf/core/io.h"
#include "pgolf/model/weights.h"

namespace {

// A few tensors of each scheme the artifact stores: fp16, fp32 and int6 per row.
std::vector<pgolf::QuantTensor> seed_tensors() {
  const at::Tensor w = at::arange(24, at::kFloat).reshape({4, 6}) / 10 - 1;
  const at::Tensor b = at::arange(3, at::kFloat);
  const pgolf::TensorPlan int6 = pgolf::parse_tensor_plan("int6,floor");
  return {pgolf::quantize_tensor("blocks.0.attn.w", w, int6, {}),
          pgolf::quantize_tensor("tok_emb", w, pgolf::TensorPlan(pgolf::Scheme::Fp16), {}),
          pgolf::quantize_tensor("scale", b, pgolf::TensorPlan(pgolf::Scheme::Fp32), {})};
}

void shards(const std::string& dir) {
  pgolf::write_shard(dir + "/empty.bin", {});
  pgolf::write_shard(dir + "/tokens.bin", {1, 17, 300, 1023, 1, 5, 5, 5});
  pgolf::write_shard(dir + "/bad_token.bin", {1, 2, 4096});
}

void artifacts(const std::string& dir) {
  const auto tensors = seed_tensors();
  for (pgolf::Codec c : {pgolf::Codec::Zstd, pgolf::Codec::Xz, pgolf::Codec::Brotli})
    pgolf::write_artifact(dir + "/" + pgolf::codec_name(c) + ".art", tensors, c, "MODEL_DIM=4\nNUM_LAYERS=1\n");
}

void payloads(const std::string& dir) {
  pgolf::write_file_atomic(dir + "/tensors.bin", pgolf::serialize_tensors(seed_tensors()));
  pgolf::write_file_atomic(dir + "/none.bin", pgolf::serialize_tensors({}));
}

void safetensors(const std::string& dir) {
  const at::Tensor w = at::arange(6, at::kFloat).reshape({2, 3});
  pgolf::save_safetensors(dir + "/weights.safetensors",
                          {{"w", w}, {"h", w.to(at::kHalf)}, {"ids", at::arange(4, at::kLong)}, {"flag", at::ones({1}, at::kBool)}},
                          {{"format", "pt"}});
  pgolf::save_safetensors(dir + "/scalar.safetensors", {{"s", at::ones({}, at::kBFloat16)}, {"e", at::empty({0, 2}, at::kByte)}});
}

// A small training state: weights, optimiser tensors, an SWA sum, a few config keys.
void checkpoints(const std::string& dir) {
  pgolf::TrainState s;
  s.step = 40;
  s.agreed_step = 39;
  s.swa_count = 2;
  s.train_ms = 1234.5;
  s.agreed_ms = 1200.25;
  s.first_step_ms = 300;
  s.looped = true;
  s.data = {1, 4096};
  s.weights = {{"tok_emb.weight", at::arange(6, at::kFloat).reshape({2, 3})}, {"bigram.scale", at::ones({}, at::kFloat)}};
  s.optimizer = {at::zeros({2, 3}), at::full({}, 40.0f)};
  s.swa_sum = {at::ones({2, 3}), at::ones({})};
  s.device = "cpu";
  s.config = {{"NUM_LAYERS", "2"}, {"SEED", "1337"}, {"MATRIX_LR", "0.025"}};
  pgolf::save_checkpoint(dir + "/checkpoint.safetensors", s);
}

void configs(const std::string& dir) {
  pgolf::write_file_atomic(dir + "/all_keys.env", pgolf::format_config(pgolf::Config{}));
  pgolf::write_file_atomic(dir + "/syntax.env",
                           "# comment\n\nexport NUM_LAYERS=4\nMODEL_DIM = 128  # note\nRUN_ID=\"a # b\"\n"
                           "LOOP_LAYERS='3-5'\nMATRIX_LR=2.5e-2\nTIE_EMBEDDINGS=yes\nQUANT_MLP=int5,q=0.999,floor,sym\n"
                           "MUON_NS_COEFFS=3.4445,-4.775,2.0315\n");
}

void corpus(const std::string& dir) {
  pgolf::write_file_atomic(dir + "/docs.jsonl",
                           "{\"text\": \"First document.\\nSecond line.\"}\n\n"
                           "{\"id\": 2, \"text\": \"caf\\u00e9 \\ud83d\\ude00 \\\"quoted\\\"\"}\n"
                           "{\"text\": \"   \"}\n{\"text\": \"last\", \"meta\": {\"a\": [1, 2.5, null, true]}}\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR\n");
    return 2;
  }
  const std::string root = argv[1];
  const std::vector<std::pair<std::string, void (*)(const std::string&)>> targets = {
      {"shard", shards},           {"artifact", artifacts}, {"artifact_payload", payloads},
      {"safetensors", safetensors}, {"config", configs},     {"corpus", corpus},
      {"checkpoint", checkpoints}};
  for (const auto& [name, write] : targets) {
    pgolf::make_dirs(root + "/" + name);
    write(root + "/" + name);
  }
  return 0;
}
