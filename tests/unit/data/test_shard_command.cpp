// Corpus to shards in process: documents, BOS, the val/train split, byte sidecars.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include <nlohmann/json.hpp>
#include <numeric>

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

// Spans: token k covers [b_k, b_{k+1}); the first starts at 0, the last ends
// at the text's end, a start going backwards counts 0; the sum is the length.
TEST(ByteSidecar, TokenByteCountsCoverTheTextOnce) {
  EXPECT_EQ(token_byte_counts({0, 5, 6, 11}, 14), (std::vector<std::uint16_t>{5, 1, 5, 3}));
  EXPECT_EQ(token_byte_counts({2, 5}, 9), (std::vector<std::uint16_t>{5, 4}));  // dropped leading white space
  EXPECT_EQ(token_byte_counts({0, 4, 4, 3, 7}, 8), (std::vector<std::uint16_t>{4, 0, 0, 3, 1}));
  EXPECT_TRUE(token_byte_counts({}, 0).empty());
  EXPECT_THROW(token_byte_counts({0, 70000}, 70001), std::runtime_error);
  // Through the tokenizer: white space the normaliser collapses still counts.
  const std::string text = "  The   quick fox.  ";
  std::vector<std::uint32_t> begins;
  const auto ids = test::tiny_tokenizer().encode(text, begins);
  ASSERT_EQ(ids.size(), begins.size());
  EXPECT_EQ(ids, test::tiny_tokenizer().encode(text));
  const auto counts = token_byte_counts(begins, text.size());
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), std::size_t{0}), text.size());
}

TEST(ShardCommand, PlainTextWithSeparator) {
  TempDir dir;
  test::write_text(dir.file("a.txt"), "first doc\nline two\n%\nsecond doc\n%\n%\nthird doc\n");
  test::write_text(dir.file("b.txt"), "fourth doc\n%\nfifth doc");
  DocumentReader reader({{dir.file("a.txt"), dir.file("b.txt")}, "auto", "%", 0});
  std::vector<std::string> got;
  for (std::string d; reader.next(d);) got.push_back(d);
  EXPECT_EQ(got, (std::vector<std::string>{"first doc\nline two", "second doc", "third doc", "fourth doc", "fifth doc"}));

  DocumentReader whole({{dir.file("a.txt"), dir.file("b.txt")}, "text", "", 2});
  got.clear();
  for (std::string d; whole.next(d);) got.push_back(d);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1], "fourth doc\n%\nfifth doc");
}

TEST(ShardCommand, BadJsonNamesFileAndLine) {
  TempDir dir;
  test::write_text(dir.file("bad.jsonl"), "{\"text\": \"ok\"}\n{\"txt\": \"no text field\"}\n");
  DocumentReader reader({{dir.file("bad.jsonl")}, "auto", "", 0});
  std::string d;
  EXPECT_TRUE(reader.next(d));
  try {
    reader.next(d);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2: JSON line has no string field \"text\""), std::string::npos)
        << e.what();
  }
}

TEST(ShardCommand, ShuffleSeedPermutesDocumentsDeterministically) {
  TempDir dir;
  auto docs = test::tiny_documents(40);
  {
    std::ofstream out(dir.file("docs.jsonl"));
    for (const auto& d : docs) out << nlohmann::json{{"text", d}}.dump() << "\n";
  }
  auto shard = [&](const std::string& out, std::uint64_t seed) {
    DocumentReader reader({{dir.file("docs.jsonl")}, "auto", "", 0});
    ShardOptions o;
    o.output_dir = dir.file(out);
    o.val_docs = 10;
    o.shuffle_seed = seed;
    make_shards(reader, test::tiny_tokenizer(), o);
    std::size_t n = 0;
    auto all = read_split(o.output_dir, "val", &n);
    auto train = read_split(o.output_dir, "train", &n);
    all.insert(all.end(), train.begin(), train.end());
    return all;
  };
  auto plain = shard("plain", 0), a = shard("a", 7), b = shard("b", 7);
  EXPECT_EQ(plain, expected_stream(docs, 0, docs.size()));
  EXPECT_EQ(a, b);       // same seed, same order
  EXPECT_NE(a, plain);   // another order...
  std::sort(a.begin(), a.end());
  std::sort(plain.begin(), plain.end());
  EXPECT_EQ(a, plain);   // ...of the same tokens
}


// A `pgolf shard` killed mid-way leaves OUT.tmp.<host>.<pid>/; the next one
// into OUT removes the folders of processes that no longer run (and leaves
// those of live ones alone).
TEST(ShardCommand, TempFoldersOfKilledRunsAreRemoved) {
  TempDir dir;
  const std::string host = test::host_name();
  const std::string dead = dir.file("out") + ".tmp." + host + "." + std::to_string(test::dead_pid());
  const std::string alive = dir.file("out") + ".tmp." + host + "." + std::to_string(::getppid());
  for (const auto& d : {dead, alive}) {
    std::filesystem::create_directories(d);
    test::write_text(d + "/fineweb_train_000000.bin", "partial");
  }
  test::write_text(dir.file("docs.txt"), "one doc\n%\nanother doc\n%\na third\n");
  DocumentReader reader({{dir.file("docs.txt")}, "auto", "%", 0});
  ShardOptions o;
  o.output_dir = dir.file("out");
  o.val_docs = 1;
  make_shards(reader, test::tiny_tokenizer(), o);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(alive));
  EXPECT_TRUE(std::filesystem::exists(dir.file("out/fineweb_val_000000.bin")));
}
