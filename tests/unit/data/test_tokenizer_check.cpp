// Whether TOKENIZER_PATH made the shards (data/tokenizer_check.h): the record
// `pgolf shard` leaves beside them and the round trip of the first val documents.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>

#include <nlohmann/json.hpp>

#include "helpers.h"
#include "pgolf/core/io.h"
#include "pgolf/data/corpus.h"
#include "pgolf/data/data.h"
#include "pgolf/data/tokenizer_check.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

namespace {

// Text the normaliser rewrites (white space, NFKC compatibility forms,
// combining marks, a literal U+2581) or byte fallback spells out: the round
// trip must hold for it too.
const std::vector<std::string> kAwkward = {
    "  padded   words\tand\n\nnew lines  ",
    "\xC7\x85 ligature, \xEF\xAC\x81ne (U+FB01) and full width \xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\x91",
    "caf\xC3\xA9 na\xC3\xAFve Z\xC3\xBCrich \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x99\x82 \xC5\x8B end",
    "e\xCC\x81 is e and a combining acute; a literal \xE2\x96\x81 mark",
    "year 2024, 3.14159 and 1,000,000; tabs\tand\r\nCRLF",
    "non\xC2\xA0" "breaking and zero\xE2\x80\x8Bwidth spaces",
};

// make_shards of `docs` with the tiny tokenizer into dir/out, the first `val` to the val split.
std::string make_tiny_shards(const TempDir& dir, const std::vector<std::string>& docs, std::int64_t val) {
  {
    std::ofstream out(dir.file("docs.jsonl"));
    for (const auto& d : docs) out << nlohmann::json{{"text", d}}.dump() << "\n";
  }
  DocumentReader reader({{dir.file("docs.jsonl")}, "auto", "", 0});
  ShardOptions opts;
  opts.output_dir = dir.file("out");
  opts.val_docs = val;
  make_shards(reader, test::tiny_tokenizer(), opts);
  return opts.output_dir;
}

// The message `f` throws, or "(no error)".
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// BOS, then the ids of `text` spelt out as byte-fallback pieces (<0xNN> is
// id 4 + NN): text the tokenizer itself encodes to other, longer pieces.
std::vector<std::uint16_t> spelt_out(const std::string& text) {
  std::vector<std::uint16_t> ids = {kBosId};
  for (unsigned char c : text) ids.push_back(static_cast<std::uint16_t>(4 + c));
  return ids;
}

}  // namespace

// The shards hold encode(text) and decode() gives back its normalised form,
// which the tokenizer encodes to the same ids: so every document of shards
// made with the right tokenizer passes, awkward text included, with the
// record beside the shards and without it (older data).
TEST(TokenizerCheck, EveryDocumentOfTheRightTokenizersShardsComesBack) {
  const Tokenizer& tok = test::tiny_tokenizer();
  std::vector<std::string> docs = kAwkward;
  for (const auto& d : test::tiny_documents(200)) docs.push_back(d);
  for (const auto& d : docs) {
    const std::vector<int> ids = tok.encode(d);
    EXPECT_EQ(tok.encode(tok.decode(ids)), ids) << d;
  }
  TempDir dir;
  const std::string out = make_tiny_shards(dir, docs, 100);
  ASSERT_TRUE(std::filesystem::exists(tokenizer_record_path(out)));
  EXPECT_NO_THROW(check_tokenizer_made_shards(test::tiny_tokenizer_path(), out));
  std::filesystem::remove(tokenizer_record_path(out));
  EXPECT_NO_THROW(check_tokenizer_made_shards(test::tiny_tokenizer_path(), out));
  EXPECT_EQ(check_tokenizer_unless_disabled(test::tiny_tokenizer_path(), out, true), "");
}

// Without a record, the round trip alone catches a tokenizer of the same
// size trained on other text; the message names both paths, how many
// documents failed, the first difference and the fix.
TEST(TokenizerCheck, AnotherTokenizerOfTheSameSizeFailsTheRoundTrip) {
  ASSERT_EQ(Tokenizer(test::other_tokenizer_path()).vocab_size(), test::kTinyVocab);
  TempDir dir;
  const std::string out = make_tiny_shards(dir, test::tiny_documents(100), 80);
  std::filesystem::remove(tokenizer_record_path(out));
  const std::string e = error_of([&] { check_tokenizer_made_shards(test::other_tokenizer_path(), out); });
  EXPECT_NE(e.find("TOKENIZER_PATH '" + test::other_tokenizer_path() + "' did not make the shards in DATA_PATH '" + out + "': "),
            std::string::npos)
      << e;
  // Some documents of the sample are passed over: the other tokenizer's
  // pieces decode to text its normaliser changes again (double spaces).
  EXPECT_TRUE(std::regex_search(e, std::regex("': [1-9][0-9]* of the [1-9][0-9]* validation documents checked do not come "
                                              "back as the same ids when decoded and encoded again")))
      << e;
  EXPECT_NE(e.find("the first, document 0 (from val token 1), differs at its token "), std::string::npos) << e;
  EXPECT_NE(e.find("Set TOKENIZER_PATH to the tokenizer that made the shards"), std::string::npos) << e;
  EXPECT_NE(e.find("set TOKENIZER_CHECK=0 to skip this check"), std::string::npos) << e;
}

// The sample: whole documents after a BOS, in order across shards, the first
// 64 only; ids before the first BOS and documents over 16 Ki ids are passed
// over. Ids spelt out in byte pieces are not what the tokenizer makes of
// their text, so a sampled document of them fails, at its first id.
TEST(TokenizerCheck, SamplesTheFirst64WholeDocumentsAfterABos) {
  TempDir dir;
  const Tokenizer& tok = test::tiny_tokenizer();
  const std::vector<std::uint16_t> bad = spelt_out("the river");
  std::vector<std::uint16_t> good = {kBosId};
  for (int id : tok.encode("The quick brown fox.")) good.push_back(static_cast<std::uint16_t>(id));
  std::vector<std::uint16_t> first(bad.begin() + 1, bad.end()), second;  // no BOS before `first`'s ids
  std::vector<std::uint16_t> long_doc = spelt_out(std::string(20000, 'x'));
  first.insert(first.end(), long_doc.begin(), long_doc.end());
  for (int d = 0; d < 64; ++d) (d < 30 ? first : second).insert((d < 30 ? first : second).end(), good.begin(), good.end());
  second.insert(second.end(), bad.begin(), bad.end());  // document 65
  write_shard(dir.file("fineweb_val_000000.bin"), first);
  write_shard(dir.file("fineweb_val_000001.bin"), second);
  EXPECT_NO_THROW(check_tokenizer_made_shards(test::tiny_tokenizer_path(), dir.path()));

  // A bad document among the first 64 fails, named by its number and first id.
  second.insert(second.begin() + static_cast<std::ptrdiff_t>(good.size()), bad.begin(), bad.end());
  write_shard(dir.file("fineweb_val_000001.bin"), second);
  const std::size_t start = first.size() + good.size() + 1;
  const std::string e = error_of([&] { check_tokenizer_made_shards(test::tiny_tokenizer_path(), dir.path()); });
  EXPECT_NE(e.find("1 of the 64 validation documents checked"), std::string::npos) << e;
  EXPECT_NE(e.find("the first, document 32 (from val token " + std::to_string(start) + "), differs at its token 0: id " +
                   std::to_string(4 + 't') + " in the shards, " + std::to_string(tok.encode("the river")[0]) +
                   " from the tokenizer"),
            std::string::npos)
      << e;
}

// The normaliser deletes the control character U+0001 in one pass and
// composes "a" with the combining circumflex U+0302 only in a second: such a
// document does not come back even with the right tokenizer. Up to a quarter
// of the sample may do that; more is refused.
TEST(TokenizerCheck, AQuarterOfTheDocumentsMayChangeTheirTextAgain) {
  const Tokenizer& tok = test::tiny_tokenizer();
  const std::string twice = "The river a\x01\xCC\x82 stone";
  const std::vector<int> ids = tok.encode(twice);
  ASSERT_NE(tok.encode(tok.decode(ids)), ids);
  for (const std::size_t changing : {16, 17}) {
    TempDir dir;
    std::vector<std::string> docs = test::tiny_documents(65);
    std::fill(docs.begin() + 10, docs.begin() + 10 + static_cast<std::ptrdiff_t>(changing), twice);
    const std::string out = make_tiny_shards(dir, docs, 64);
    const std::string e = error_of([&] { check_tokenizer_made_shards(test::tiny_tokenizer_path(), out); });
    if (changing == 16) {
      EXPECT_EQ(e, "(no error)");
      continue;
    }
    EXPECT_NE(e.find(": 17 of the 64 validation documents checked do not come back as the same ids when decoded and "
                     "encoded again (17 of them because the normaliser changes their decoded text again, which up to a "
                     "quarter of the documents may do); the first, document 10 "),
              std::string::npos)
        << e;
  }
}

// The record names the tokenizer that made the shards by size and CRC-32. A
// copy with one changed byte that the round trip cannot see (a trainer
// setting, character_coverage 0.999) is caught by the record alone, as is a
// record written for another tokenizer; both errors name both files and hashes.
TEST(TokenizerCheck, RecordCatchesAChangedByteAndAnotherTokenizer) {
  TempDir dir;
  const std::string out = make_tiny_shards(dir, test::tiny_documents(100), 80);
  const std::string record = read_file(tokenizer_record_path(out));
  const std::string tiny = read_file(test::tiny_tokenizer_path());
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", file_crc32(test::tiny_tokenizer_path()));
  EXPECT_NE(record.find("tokenizer=tiny.model\nbytes=" + std::to_string(tiny.size()) + "\ncrc32=" + crc + "\n"),
            std::string::npos)
      << record;

  std::string changed = tiny;
  const std::size_t coverage = changed.find(std::string("\x77\xBE\x7F\x3F", 4));  // 0.999f, little-endian
  ASSERT_NE(coverage, std::string::npos);
  changed[coverage] = '\x78';
  write_file_atomic(dir.file("changed.model"), changed);
  std::filesystem::rename(tokenizer_record_path(out), dir.file("record.txt"));
  EXPECT_NO_THROW(check_tokenizer_made_shards(dir.file("changed.model"), out));  // the round trip cannot tell
  std::filesystem::rename(dir.file("record.txt"), tokenizer_record_path(out));
  std::string e = error_of([&] { check_tokenizer_made_shards(dir.file("changed.model"), out); });
  EXPECT_NE(e.find("TOKENIZER_PATH '" + dir.file("changed.model") + "' (bytes:" + std::to_string(tiny.size()) +
                   " crc32:"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("is not the tokenizer that made the shards in DATA_PATH '" + out + "': their record '" +
                   tokenizer_record_path(out) + "' names 'tiny.model' (bytes:" + std::to_string(tiny.size()) +
                   " crc32:" + crc + ")"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("set TOKENIZER_CHECK=0 to skip this check"), std::string::npos) << e;

  write_tokenizer_record(out, test::other_tokenizer_path());
  e = error_of([&] { check_tokenizer_made_shards(test::tiny_tokenizer_path(), out); });
  EXPECT_NE(e.find("their record '" + tokenizer_record_path(out) + "' names 'other.model'"), std::string::npos) << e;

  write_file_atomic(tokenizer_record_path(out), "tokenizer=tiny.model\n");
  e = error_of([&] { check_tokenizer_made_shards(test::tiny_tokenizer_path(), out); });
  EXPECT_NE(e.find("tokenizer record '" + tokenizer_record_path(out) + "' is damaged"), std::string::npos) << e;
}

// TOKENIZER_CHECK=0: nothing is checked, and the line to log says so.
TEST(TokenizerCheck, DisabledCheckOnlySaysSo) {
  TempDir dir;
  const std::string out = make_tiny_shards(dir, test::tiny_documents(100), 80);
  EXPECT_THROW(check_tokenizer_unless_disabled(test::other_tokenizer_path(), out, true), std::runtime_error);
  EXPECT_EQ(check_tokenizer_unless_disabled(test::other_tokenizer_path(), out, false),
            "tokenizer_check: skipped (TOKENIZER_CHECK=0): TOKENIZER_PATH '" + test::other_tokenizer_path() +
                "' is not compared with the shards in DATA_PATH '" + out + "'");
}
