// CaseOps: the transform by hand, its exact inverse on random text and the byte origins it reports.
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

// Text from pieces that exercise every rule: both cases, digits, multi-byte
// UTF-8, the markers themselves, a private-use neighbour and broken UTF-8.
std::string random_text(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {
      "a", "b", "z", "A", "B", "Z", "q", "Q", "0", "7", " ", ".", "\n", "é", "É", "ß", "中", "😀", "-", "'",
      T,   A,   C,   E,   "\xEE\x80\x84", "\xEE\x80", "\xEE", "\xFF", "The", "BPE", "iPhone", "McDonald", "I"};
  std::string s;
  const int n = std::uniform_int_distribution<int>(0, 40)(rng);
  for (int i = 0; i < n; ++i) s += pieces[std::uniform_int_distribution<std::size_t>(0, pieces.size() - 1)(rng)];
  return s;
}

}  // namespace

TEST(CaseOps, EncodesEachRuleAsDocumented) {
  EXPECT_EQ(caseops_encode("the Golf BPE iPhone McDonald I x1Y").text,
            "the " + T + "golf " + A + "bpe i" + C + "phone " + C + "mc" + C + "donald " + T + "i x1" + T + "y");
  EXPECT_EQ(caseops_encode("a" + E + "b" + T).text, "a" + E + E + "b" + E + T);
  EXPECT_EQ(caseops_encode("").text, "");
  EXPECT_EQ(caseops_decode("the " + T + "golf " + A + "bpe i" + C + "phone"), "the Golf BPE iPhone");
  EXPECT_THROW(caseops_decode(T + " x"), std::invalid_argument);
  EXPECT_THROW(caseops_decode("x" + C), std::invalid_argument);
  EXPECT_THROW(caseops_decode(E + "e"), std::invalid_argument);
}

TEST(CaseOps, DecodeInvertsEncodeOnRandomText) {
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    const std::string s = random_text(rng);
    const CaseOpsText e = caseops_encode(s);
    ASSERT_EQ(caseops_decode(e.text), s) << "case " << i;
    // Every byte comes from a byte at or after the previous one's origin;
    // outside markers it is that original byte, lower-cased.
    ASSERT_EQ(e.source.size(), e.text.size());
    for (std::size_t j = 0; j < e.text.size(); ++j) {
      ASSERT_LT(e.source[j], s.size());
      if (j > 0) {
        ASSERT_GE(e.source[j], e.source[j - 1]);
      }
    }
    for (std::size_t j = 0; j < s.size(); ++j) {
      const bool covered = std::find(e.source.begin(), e.source.end(), j) != e.source.end();
      ASSERT_TRUE(covered) << "original byte " << j << " of case " << i << " has no encoded byte";
    }
  }
}

