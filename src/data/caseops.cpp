#include "pgolf/data/caseops.h"

#include <stdexcept>

namespace pgolf {

namespace {

// U+E000 + k in UTF-8: EE 80 80+k.
constexpr int kTitle = 0, kAllCaps = 1, kCapNext = 2, kEscape = 3;

// The marker index at text[i], or -1.
int marker_at(std::string_view text, std::size_t i) {
  if (i + 2 >= text.size() || static_cast<unsigned char>(text[i]) != 0xEE ||
      static_cast<unsigned char>(text[i + 1]) != 0x80)
    return -1;
  const int k = static_cast<unsigned char>(text[i + 2]) - 0x80;
  return k >= 0 && k <= kEscape ? k : -1;
}

bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_letter(char c) { return is_upper(c) || is_lower(c); }
char lower(char c) { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }
char upper(char c) { return is_lower(c) ? static_cast<char>(c - 'a' + 'A') : c; }

}  // namespace

const std::vector<std::string>& caseops_markers() {
  static const std::vector<std::string> m = {"\xEE\x80\x80", "\xEE\x80\x81", "\xEE\x80\x82", "\xEE\x80\x83"};
  return m;
}

CaseOpsText caseops_encode(std::string_view in) {
  CaseOpsText out;
  out.text.reserve(in.size() + in.size() / 8);
  out.source.reserve(out.text.capacity());
  auto put = [&](std::string_view bytes, std::size_t from) {
    out.text.append(bytes);
    out.source.insert(out.source.end(), bytes.size(), static_cast<std::uint32_t>(from));
  };
  const auto& markers = caseops_markers();
  std::size_t i = 0;
  while (i < in.size()) {
    if (marker_at(in, i) >= 0) {  // a literal marker: ESCAPE, then its three bytes
      put(markers[kEscape], i);
      for (std::size_t b = 0; b < 3; ++b) put(in.substr(i + b, 1), i + b);
      i += 3;
      continue;
    }
    if (!is_letter(in[i])) {
      put(in.substr(i, 1), i);
      ++i;
      continue;
    }
    std::size_t end = i;
    std::size_t uppers = 0;
    while (end < in.size() && is_letter(in[end])) uppers += is_upper(in[end++]);
    const std::size_t len = end - i;
    const bool title = is_upper(in[i]) && uppers == 1;
    const bool all_caps = len >= 2 && uppers == len;
    if (title) put(markers[kTitle], i);
    if (all_caps) put(markers[kAllCaps], i);
    for (std::size_t j = i; j < end; ++j) {
      if (is_upper(in[j]) && !title && !all_caps) put(markers[kCapNext], j);
      const char c = lower(in[j]);
      put(std::string_view(&c, 1), j);
    }
    i = end;
  }
  return out;
}

std::string caseops_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  auto fail = [&](const char* what) {
    throw std::invalid_argument("CaseOps text is malformed at byte " + std::to_string(i) + ": " + what);
  };
  while (i < in.size()) {
    const int m = marker_at(in, i);
    if (m < 0) {
      out.push_back(in[i++]);
      continue;
    }
    i += 3;
    if (m == kEscape) {
      if (marker_at(in, i) < 0) fail("ESCAPE not followed by a marker character");
      out.append(in.substr(i, 3));
      i += 3;
    } else if (m == kCapNext) {
      if (i >= in.size() || !is_lower(in[i])) fail("CAPNEXT not followed by a lower-case letter");
      out.push_back(upper(in[i++]));
    } else {
      if (i >= in.size() || !is_lower(in[i])) fail("TITLE or ALLCAPS not followed by a word");
      out.push_back(upper(in[i++]));
      while (i < in.size() && is_lower(in[i])) out.push_back(m == kAllCaps ? upper(in[i++]) : in[i++]);
    }
  }
  return out;
}

}  // namespace pgolf
