// `pgolf tokenizer/shard --caseops` end to end.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "helpers.h"
#include "pgolf/data/caseops.h"
#include "pgolf/data/data.h"
#include "pgolf/data/tokenizer.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::run_pgolf;
using test::TempDir;

namespace {

const std::string T = "\xEE\x80\x80", A = "\xEE\x80\x81", C = "\xEE\x80\x82", E = "\xEE\x80\x83";

}  // namespace

// Trained and sharded with --caseops: the markers are pieces of their own,
// each val document decodes back to its original text, and its sidecar counts
// sum to the original UTF-8 length (markers count nothing).
TEST(CaseOps, TokenizerAndShardsRoundTripWithOriginalByteCounts) {
  TempDir dir;
  std::vector<std::string> docs = test::tiny_documents(300);
  for (std::size_t i = 0; i < docs.size(); i += 3) docs[i] += " The BPE of an iPhone, " + T + "literal" + E + " É.";
  {
    std::ofstream out(dir.file("docs.jsonl"));
    for (const auto& d : docs) out << nlohmann::json{{"text", d}}.dump() << "\n";
  }
  const std::string corpus = " --input " + dir.file("docs.jsonl");
  auto r = run_pgolf("tokenizer --caseops --vocab-size 400 --output " + dir.file("c.model") + corpus);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Tokenizer tok(dir.file("c.model"));
  for (const auto& m : caseops_markers()) EXPECT_TRUE(tok.has_piece(m));

  // A tokenizer without the markers is refused.
  r = run_pgolf("shard --caseops --tokenizer " + test::tiny_tokenizer_path() + " --output-dir " + dir.file("bad") + corpus);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("has no CaseOps marker pieces: train it with `pgolf tokenizer --caseops`"), std::string::npos)
      << r.output;

  r = run_pgolf("shard --caseops --val-docs 30 --shard-tokens 700 --tokenizer " + dir.file("c.model") +
                " --output-dir " + dir.file("out") + corpus);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const ValidationSplit split = load_validation(dir.file("out"), 1, tok.vocab_size());
  ASSERT_EQ(split.bytes.size(), split.tokens.size());
  std::vector<std::vector<int>> doc_ids;
  std::vector<std::size_t> doc_bytes;
  for (std::size_t i = 0; i < split.tokens.size(); ++i) {
    if (split.tokens[i] == kBosId) {
      doc_ids.emplace_back();
      doc_bytes.push_back(0);
      continue;
    }
    doc_ids.back().push_back(split.tokens[i]);
    doc_bytes.back() += split.bytes[i];
  }
  ASSERT_EQ(doc_ids.size(), 30u);
  for (std::size_t d = 0; d < doc_ids.size(); ++d) {
    EXPECT_EQ(caseops_decode(tok.decode(doc_ids[d])), docs[d]) << d;
    EXPECT_EQ(doc_bytes[d], docs[d].size()) << d;
  }
}
