// `pgolf shard`, `pgolf data` and the CLI error path, run as the real binary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <numeric>
#include <regex>

#include "helpers.h"
#include "shard_reader.h"
#include "pgolf/config/config.h"
#include "pgolf/data/corpus.h"
#include "pgolf/data/data.h"
#include "pgolf/eval/eval.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::run_pgolf;
using test::TempDir;

using test::expected_stream;
using test::read_split;
using test::value_of;

TEST(ShardCommand, JsonlGivesOfficialShardsWithBosAndValTrainSplit) {
  TempDir dir;
  auto docs = test::tiny_documents(12);
  {
    std::ofstream out(dir.file("docs.jsonl"));
    for (std::size_t i = 0; i < docs.size(); ++i) {
      out << nlohmann::json{{"id", i}, {"text", docs[i]}}.dump() << "\n";
      if (i == 4) out << "\n" << nlohmann::json{{"text", "   "}}.dump() << "\n";  // blank line, blank doc: skipped
    }
  }
  auto r = run_pgolf("shard --input " + dir.file("docs.jsonl") + " --tokenizer " + test::tiny_tokenizer_path() +
                     " --output-dir " + dir.file("out") + " --val-docs 3 --shard-tokens 100");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("val: docs:3 "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train: docs:9 "), std::string::npos) << r.output;

  std::size_t val_shards = 0, train_shards = 0;
  auto val = read_split(dir.file("out"), "val", &val_shards);
  auto train = read_split(dir.file("out"), "train", &train_shards);
  EXPECT_EQ(val, expected_stream(docs, 0, 3));
  EXPECT_EQ(train, expected_stream(docs, 3, docs.size()));
  // Every shard but the last of a split holds exactly --shard-tokens tokens.
  EXPECT_EQ(train_shards, (train.size() + 99) / 100);
  EXPECT_EQ(Shard(dir.file("out/fineweb_train_000000.bin")).num_tokens(), 100u);
  EXPECT_EQ(val_shards, (val.size() + 99) / 100);
  // BOS positions are exactly the document starts.
  std::size_t bos = std::count(train.begin(), train.end(), kBosId);
  EXPECT_EQ(bos, docs.size() - 3);
  EXPECT_EQ(train.front(), kBosId);

  // The output folder is never silently overwritten.
  auto again = run_pgolf("shard --input " + dir.file("docs.jsonl") + " --tokenizer " + test::tiny_tokenizer_path() +
                         " --output-dir " + dir.file("out") + " --val-docs 3");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("exists (pass --force"), std::string::npos) << again.output;
}

// `pgolf shard --byte-sidecars` writes one sidecar per val shard from the
// original text; on text the normaliser leaves alone, the sidecar counts equal
// the tokenizer tables' per target, so both give the same val_bpb denominator.
TEST(ByteSidecar, ShardWritesSidecarsThatAgreeWithTheTablesOnPlainText) {
  TempDir dir;
  const auto docs = test::tiny_documents(40);
  {
    std::ofstream out(dir.file("docs.jsonl"));
    for (const auto& d : docs) out << nlohmann::json{{"text", d}}.dump() << "\n";
  }
  ASSERT_EQ(run_pgolf("shard --input " + dir.file("docs.jsonl") + " --tokenizer " + test::tiny_tokenizer_path() +
                      " --output-dir " + dir.file("out") + " --val-docs 12 --shard-tokens 150 --byte-sidecars")
                .exit_code,
            0);
  const auto val_shards = shard_files(val_pattern(dir.file("out")));
  ASSERT_GT(val_shards.size(), 1u);
  for (const auto& f : val_shards) EXPECT_EQ(Shard(byte_sidecar_path(f)).num_tokens(), Shard(f).num_tokens()) << f;
  EXPECT_TRUE(glob_sorted(dir.file("out/fineweb_train_bytes_*.bin")).empty());

  const ValidationSplit split = load_validation(dir.file("out"), 1, test::kTinyVocab);
  ASSERT_EQ(split.bytes.size(), split.tokens.size());
  // Per document (BOS to BOS) the counts sum to its UTF-8 length; BOS counts 0.
  std::vector<std::size_t> doc_bytes;
  for (std::size_t i = 0; i < split.tokens.size(); ++i) {
    if (split.tokens[i] == kBosId) {
      EXPECT_EQ(split.bytes[i], 0) << i;
      doc_bytes.push_back(0);
    }
    doc_bytes.back() += split.bytes[i];
  }
  ASSERT_EQ(doc_bytes.size(), 12u);
  for (std::size_t d = 0; d < doc_bytes.size(); ++d) EXPECT_EQ(doc_bytes[d], docs[d].size()) << d;

  const TargetBytes sidecar = target_bytes(split, test::tiny_tokenizer_path(), test::kTinyVocab);
  EXPECT_EQ(sidecar.source, "sidecars");
  const std::vector<std::int32_t> tables = lut_target_bytes(split.tokens, build_byte_luts(test::tiny_tokenizer(), test::kTinyVocab));
  EXPECT_EQ(sidecar.bytes, tables);

  // `pgolf data` counts the same bytes either way.
  const std::string data = "data --set DATA_PATH=" + dir.file("out") + " --set TOKENIZER_PATH=" +
                           test::tiny_tokenizer_path() + " --set VOCAB_SIZE=" + std::to_string(test::kTinyVocab) +
                           " --set TRAIN_SEQ_LEN=1 --set EVAL_STRIDE=1";
  const auto with = run_pgolf(data);
  ASSERT_EQ(with.exit_code, 0) << with.output;
  EXPECT_NE(with.output.find("bytes_from:sidecars"), std::string::npos) << with.output;
  for (const auto& f : val_shards) std::filesystem::remove(byte_sidecar_path(f));
  const auto without = run_pgolf(data);
  ASSERT_EQ(without.exit_code, 0) << without.output;
  EXPECT_NE(without.output.find("bytes_from:tokenizer"), std::string::npos) << without.output;
  for (const std::string key : {" bytes:", "unigram_baseline val_bpb:"})
    EXPECT_EQ(value_of(with.output, key), value_of(without.output, key)) << key;
}

TEST(DataCommand, ReportsStatsOfAShardedCorpus) {
  TempDir dir;
  auto docs = test::tiny_documents(30);
  {
    std::ofstream out(dir.file("docs.jsonl"));
    for (const auto& d : docs) out << nlohmann::json{{"text", d}}.dump() << "\n";
  }
  ASSERT_EQ(run_pgolf("shard --input " + dir.file("docs.jsonl") + " --tokenizer " + test::tiny_tokenizer_path() +
                      " --output-dir " + dir.file("out") + " --val-docs 10")
                .exit_code,
            0);
  auto r = run_pgolf("data --set DATA_PATH=" + dir.file("out") + " --set TOKENIZER_PATH=" +
                     test::tiny_tokenizer_path() + " --set VOCAB_SIZE=" + std::to_string(test::kTinyVocab) +
                     " --set TRAIN_SEQ_LEN=8 --set TRAIN_BATCH_TOKENS=64 --set EVAL_STRIDE=4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto val = expected_stream(docs, 0, 10);
  EXPECT_NE(r.output.find("val: scored_tokens:" + std::to_string((val.size() - 1) / 8 * 8)), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("train: shards:1 tokens:" + std::to_string(expected_stream(docs, 10, 30).size())),
            std::string::npos)
      << r.output;
}

TEST(Cli, UnknownKeyFailsWithHint) {
  auto r = run_pgolf("config --set NUM_LAYRS=3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("did you mean NUM_LAYERS"), std::string::npos) << r.output;
}

TEST(Cli, ConfigListDocumentsEveryKey) {
  auto r = run_pgolf("config --list");
  ASSERT_EQ(r.exit_code, 0);
  for (const auto& k : config_keys()) EXPECT_NE(r.output.find(k.name), std::string::npos) << k.name;
}

// `pgolf data` rejects a token id >= VOCAB_SIZE in a train or val shard,
// naming the shard, the position and the id, instead of indexing past the
// byte tables.
TEST(DataCommand, TokenIdsBeyondTheVocabularyNameShardPositionAndId) {
  TempDir dir;
  std::vector<std::uint16_t> ok(100, 5), bad = ok;
  bad[42] = 4000;
  const std::string args = "data --set DATA_PATH=" + dir.path() + " --set TOKENIZER_PATH=" + test::tiny_tokenizer_path() +
                           " --set VOCAB_SIZE=" + std::to_string(test::kTinyVocab) +
                           " --set TRAIN_SEQ_LEN=8 --set TRAIN_BATCH_TOKENS=64 --set EVAL_STRIDE=4";
  write_shard(dir.file("fineweb_train_000000.bin"), ok);
  write_shard(dir.file("fineweb_val_000000.bin"), bad);
  auto r = run_pgolf(args);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("fineweb_val_000000.bin': token 42 of 100 has id 4000, not below VOCAB_SIZE=400"), std::string::npos)
      << r.output;
  write_shard(dir.file("fineweb_train_000000.bin"), bad);
  write_shard(dir.file("fineweb_val_000000.bin"), ok);
  r = run_pgolf(args);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("fineweb_train_000000.bin': token 42 of 100 has id 4000"), std::string::npos) << r.output;
  write_shard(dir.file("fineweb_train_000000.bin"), ok);
  EXPECT_EQ(run_pgolf(args).exit_code, 0);
}

// A LibTorch error (here GPTQ's Cholesky of a singular Hessian: every token
// embeds alike, so the attention's inputs are all one vector, and no damping)
// reaches the user as its message alone, without LibTorch's C++ stack trace.
TEST(Cli, LibTorchErrorsPrintWithoutAStackTrace) {
  TempDir dir;
  Config c = test::tiny_run(dir, 1);
  test::write_text(dir.file("tiny.env"), format_config(c));
  GPT m(c.model, {});
  m.param("tok_emb.weight").detach().fill_(1.0);
  save_safetensors(dir.file("nan.safetensors"), m.parameters());
  auto r = run_pgolf("export --config " + dir.file("tiny.env") + " --weights " + dir.file("nan.safetensors") + " --output " +
                     dir.file("a.pgolf") + " --set QUANT_ATTN=int6,gptq --set QUANT_PASSTHROUGH_NUMEL=0 --set GPTQ_TOKENS=256 --set GPTQ_DAMP=0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("pgolf: error: gptq: "), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Exception raised from"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("frame #"), std::string::npos) << r.output;
}

// The output folder is made before the training; a corpus too small for the
// pieces asked for gives fewer, and says so.
TEST(TokenizerCommand, MakesItsFolderAndWarnsWhenItMakesFewerPieces) {
  TempDir dir;
  {
    std::ofstream out(dir.file("docs.jsonl"));
    for (const auto& d : test::tiny_documents(40)) out << nlohmann::json{{"text", d}}.dump() << "\n";
  }
  auto r = run_pgolf("tokenizer --vocab-size 4000 --output " + dir.file("new/folder/t.model") + " --input " + dir.file("docs.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("new/folder/t.model")));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("pieces:(\\d+)"))) << r.output;
  EXPECT_LT(std::stoi(m[1]), 4000);
  EXPECT_NE(r.output.find("WARNING: asked for 4000 pieces, made " + std::string(m[1]) + ": BPE stops merging"), std::string::npos)
      << r.output;
}

TEST(Cli, VersionNamesTheSourcesAndLibTorch) {
  auto r = run_pgolf("--version");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex("^pgolf [0-9]+\\.[0-9]+\\.[0-9]+ commit:\\S+ sources_crc32:[0-9a-f]{8} "
                                                     "libtorch:[0-9.]+ cuda:\\S+\n$")))
      << r.output;
}
