// `pgolf train`, `eval` and `data` stop before any work unless TOKENIZER_PATH
// made the shards (data/tokenizer_check.h); TOKENIZER_CHECK=0 skips that.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "helpers.h"
#include "pgolf/core/io.h"
#include "pgolf/data/tokenizer_check.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::run_pgolf;
using test::TempDir;

// The tiny run's shards have no record (as data older than it), so the round
// trip alone decides: a tokenizer of the same size trained on other text
// gives exit 1 and the message in all three commands, before any step or
// score; the right one passes; TOKENIZER_CHECK=0 runs with a line saying the
// check was skipped.
TEST(TokenizerCheck, TrainEvalAndDataRefuseAnotherTokenizerOfTheSameSize) {
  TempDir dir;
  Config c = test::tiny_run(dir, 1);
  test::write_text(dir.file("tiny.env"), format_config(c));
  GPT m(c.model, {});
  save_safetensors(dir.file("w.safetensors"), m.parameters());
  const std::string cfg = " --config " + dir.file("tiny.env");
  const std::string other = " --set TOKENIZER_PATH=" + test::other_tokenizer_path();
  const std::string refused = "pgolf: error: TOKENIZER_PATH '" + test::other_tokenizer_path() +
                              "' did not make the shards in DATA_PATH '" + c.run.data_path + "': ";
  const std::string skipped = "tokenizer_check: skipped (TOKENIZER_CHECK=0): TOKENIZER_PATH '" +
                              test::other_tokenizer_path() + "' is not compared with the shards in DATA_PATH '" +
                              c.run.data_path + "'";

  for (const std::string& command : std::vector<std::string>{"data", "eval " + dir.file("w.safetensors"), "train"}) {
    const std::string overwrite = command == "train" ? " --overwrite" : "";  // the refused run made its folder
    auto r = run_pgolf(command + cfg + other);
    EXPECT_EQ(r.exit_code, 1) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(refused), std::string::npos) << command << "\n" << r.output;
    EXPECT_NE(r.output.find("set TOKENIZER_CHECK=0 to skip this check"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("val_bpb:"), std::string::npos) << command << "\n" << r.output;
    EXPECT_EQ(r.output.find("step:"), std::string::npos) << command << "\n" << r.output;

    r = run_pgolf(command + cfg + overwrite);
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.output;
    EXPECT_EQ(r.output.find("tokenizer_check:"), std::string::npos) << command << "\n" << r.output;

    r = run_pgolf(command + cfg + other + " --set TOKENIZER_CHECK=0" + overwrite);
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.output;
    EXPECT_NE(r.output.find(skipped), std::string::npos) << command << "\n" << r.output;
  }
  EXPECT_NE(read_file(dir.file("run/train.log")).find(skipped), std::string::npos);
}

// `pgolf shard` records the tokenizer beside the shards; `pgolf data` then
// refuses a copy of that tokenizer with one changed byte (a trainer setting
// the round trip cannot see), naming both hashes and the record.
TEST(TokenizerCheck, ShardRecordCatchesATokenizerWithOneChangedByte) {
  TempDir dir;
  {
    std::ofstream out(dir.file("docs.jsonl"));
    for (const auto& d : test::tiny_documents(40)) out << nlohmann::json{{"text", d}}.dump() << "\n";
  }
  ASSERT_EQ(run_pgolf("shard --input " + dir.file("docs.jsonl") + " --tokenizer " + test::tiny_tokenizer_path() +
                      " --output-dir " + dir.file("out") + " --val-docs 10")
                .exit_code,
            0);
  const std::string record = tokenizer_record_path(dir.file("out"));
  EXPECT_NE(read_file(record).find("tokenizer=tiny.model\n"), std::string::npos);
  std::string changed = read_file(test::tiny_tokenizer_path());
  const std::size_t coverage = changed.find(std::string("\x77\xBE\x7F\x3F", 4));  // character_coverage 0.999f
  ASSERT_NE(coverage, std::string::npos);
  changed[coverage] = '\x78';
  write_file_atomic(dir.file("changed.model"), changed);

  const std::string data = "data --set DATA_PATH=" + dir.file("out") + " --set VOCAB_SIZE=" +
                           std::to_string(test::kTinyVocab) + " --set TRAIN_SEQ_LEN=8 --set EVAL_STRIDE=4 --set TOKENIZER_PATH=";
  auto r = run_pgolf(data + dir.file("changed.model"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("pgolf: error: TOKENIZER_PATH '" + dir.file("changed.model") + "' (bytes:" +
                          std::to_string(changed.size()) + " crc32:"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("is not the tokenizer that made the shards in DATA_PATH '" + dir.file("out") + "': their record '" +
                          record + "' names 'tiny.model' (bytes:" + std::to_string(changed.size()) + " crc32:"),
            std::string::npos)
      << r.output;
  r = run_pgolf(data + test::tiny_tokenizer_path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
}
