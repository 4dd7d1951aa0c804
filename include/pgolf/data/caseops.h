// CaseOps: a lossless case transform applied to text before it is tokenised,
// so "The", "THE" and "the" share the pieces of "the" and case costs a marker.
//
// A word is a maximal run of ASCII letters. Encoding writes each word in lower
// case, preceded by
//   TITLE    if its first letter is upper case and the rest lower ("Golf"),
//   ALLCAPS  if it has two or more letters, all upper case ("BPE"),
//   CAPNEXT  before each upper-case letter of any other mixed word ("iPhone"
//            -> i CAPNEXT p hone).
// A literal marker character in the text is written after ESCAPE. Everything
// else is copied byte for byte (invalid UTF-8 included). Decoding inverts it
// exactly. The markers are private-use code points U+E000..U+E003, trained
// into the tokenizer as reserved pieces (`pgolf tokenizer --caseops`).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgolf {

// The UTF-8 of TITLE, ALLCAPS, CAPNEXT, ESCAPE, in that order.
const std::vector<std::string>& caseops_markers();

struct CaseOpsText {
  std::string text;
  // source[i]: the byte offset in the original text that byte i of `text`
  // comes from; a marker's bytes point at the byte they precede.
  std::vector<std::uint32_t> source;
};

CaseOpsText caseops_encode(std::string_view original);
// The inverse of caseops_encode; throws on a marker with nothing to apply to.
std::string caseops_decode(std::string_view encoded);

}  // namespace pgolf
