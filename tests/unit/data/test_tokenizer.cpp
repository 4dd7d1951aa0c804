#include <gtest/gtest.h>

#include "helpers.h"
#include "pgolf/data/tokenizer.h"
#include "tiny_corpus.h"

using namespace pgolf;

// Sum of docs/MODEL.md ("The score: bits per byte") bytes over a document encoded with BOS in front.
static std::int64_t lut_bytes(const ByteLuts& l, const std::vector<int>& ids) {
  std::int64_t total = 0;
  int prev = 1;  // BOS
  for (int t : ids) {
    total += l.token_bytes(prev, t);
    prev = t;
  }
  return total;
}

TEST(Tokenizer, TrainedModelHasSpecSettings) {
  const Tokenizer& tok = test::tiny_tokenizer();
  EXPECT_EQ(tok.vocab_size(), test::kTinyVocab);
  EXPECT_EQ(tok.piece(0), "<pad>");
  EXPECT_TRUE(tok.is_control(1));  // bos
  EXPECT_EQ(tok.piece(1), "<s>");
  EXPECT_EQ(tok.piece(2), "</s>");
  EXPECT_TRUE(tok.is_unknown(3));
  EXPECT_TRUE(tok.is_byte(4));  // byte fallback pieces follow the specials
  // split_digits: every digit is its own piece.
  auto ids = tok.encode("year 2024");
  int digits = 0;
  for (int id : ids) digits += tok.piece(id).find_first_of("0123456789") != std::string::npos;
  EXPECT_EQ(digits, 4);
  // add_dummy_prefix=false: the first word carries no U+2581.
  EXPECT_NE(tok.piece(tok.encode("the")[0]).rfind("\xE2\x96\x81", 0), 0u);
}

// The LUT invariant of docs/MODEL.md ("The score: bits per byte"): per-token bytes sum to the UTF-8 length of
// the normalised text. These documents are already in normal form (NFC,
// single spaces, no leading or trailing white space), so their normalised
// length is their own length; rare characters exercise byte fallback.
TEST(ByteLuts, TokenBytesSumToUtf8LengthOfNormalisedText) {
  const Tokenizer& tok = test::tiny_tokenizer();
  ByteLuts luts = build_byte_luts(tok, test::kTinyVocab);
  const std::vector<std::string> docs = {
      "the quick brown fox jumps over the lazy dog",
      "In 1969 a model with 12 layers, 8 heads and 512 dims was unheard of.",
      "caf\xC3\xA9 na\xC3\xAFve Z\xC3\xBCrich \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x99\x82 \xC5\x8B end",
      "punctuation!? (brackets) [more] {braces} -- dashes; colons: \"quotes\"",
  };
  for (const auto& d : docs) {
    auto ids = tok.encode(d);
    EXPECT_EQ(lut_bytes(luts, ids), static_cast<std::int64_t>(d.size())) << d;
  }
  // Irregular white space: normalisation collapses it; the decoded text is
  // the normalised form, and the tables count exactly its bytes.
  // NFKC also rewrites compatibility characters (U+01C5 becomes "D" + U+017E).
  for (std::string d : {"  padded   words\tand\n\nnew lines  ", "x  y", "\xC7\x85 ligature"}) {
    auto ids = tok.encode(d);
    std::string normalised = tok.decode(ids);
    EXPECT_NE(normalised, d);
    EXPECT_EQ(lut_bytes(luts, ids), static_cast<std::int64_t>(normalised.size())) << d;
  }
}

TEST(ByteLuts, SpecialAndBytePiecesFollowSpec) {
  const Tokenizer& tok = test::tiny_tokenizer();
  ByteLuts l = build_byte_luts(tok, test::kTinyVocab);
  for (int id : {0, 1, 2, 3}) {
    EXPECT_TRUE(l.is_boundary[id]) << id;
    EXPECT_EQ(l.base_bytes[id], 0) << id;
  }
  EXPECT_EQ(l.base_bytes[4], 1);  // <0x00>
  EXPECT_FALSE(l.is_boundary[4]);
  // A leading-space piece after BOS gets no extra byte; after a word it does.
  int spaced = 0, plain = 0;
  for (int id = 5; id < tok.vocab_size(); ++id) {
    const std::string p = tok.piece(id);
    if (tok.is_byte(id)) continue;
    const bool leading = p.rfind("\xE2\x96\x81", 0) == 0;
    EXPECT_EQ(l.has_leading_space[id], leading) << p;
    const int base = static_cast<int>(p.size()) - (leading ? 3 : 0);
    EXPECT_EQ(l.base_bytes[id], base) << p;
    EXPECT_EQ(l.token_bytes(1, id), base) << p;                    // after BOS: no space byte
    EXPECT_EQ(l.token_bytes(id, id), base + (leading ? 1 : 0)) << p;  // after a word: one
    (leading ? spaced : plain)++;
  }
  EXPECT_GT(spaced, 10);
  EXPECT_GT(plain, 10);
}

TEST(ByteLuts, VocabMismatchIsAClearError) {
  try {
    build_byte_luts(test::tiny_tokenizer(), 1024);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("has " + std::to_string(test::kTinyVocab) + " pieces but VOCAB_SIZE=1024"), std::string::npos) << m;
  }
}

TEST(Tokenizer, MissingModelFileNamesThePath) {
  try {
    Tokenizer t("/nonexistent/model.model");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.model"), std::string::npos);
  }
}
