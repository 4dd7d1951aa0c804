#include "pgolf/export/minify.h"

#include <algorithm>
#include <cctype>

#include "pgolf/core/io.h"

namespace pgolf {
namespace {

bool is_ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The output, a line at a time: white space at the start and end of a line and
// empty lines are dropped, a run of blanks inside a line becomes one space.
class Lines {
 public:
  void blank() { space_ = true; }
  void code(char c) {
    if (space_ && !at_line_start()) out_ += ' ';
    space_ = false;
    out_ += c;
  }
  // Literal text (a string, or a quoted CMake argument), copied as it is.
  void verbatim(const std::string& text, std::size_t begin, std::size_t end) {
    code(text[begin]);
    out_.append(text, begin + 1, end - begin - 1);
  }
  void newline() {
    space_ = false;
    if (!at_line_start()) out_ += '\n';
  }
  std::string take() {
    newline();
    return std::move(out_);
  }

 private:
  bool at_line_start() const { return out_.empty() || out_.back() == '\n'; }
  std::string out_;
  bool space_ = false;
};

// The end of a quoted literal opened by text[begin], past its closing quote
// (backslash escapes skipped); the end of the text when it is not closed.
std::size_t quoted_end(const std::string& text, std::size_t begin) {
  const char quote = text[begin];
  for (std::size_t i = begin + 1; i < text.size(); ++i) {
    if (text[i] == '\\') ++i;
    else if (text[i] == quote) return i + 1;
  }
  return text.size();
}

// The length of a raw string prefix (R, u8R, uR, UR, LR) ending just before
// text[quote], or 0 when the '"' opens an ordinary string.
std::size_t raw_prefix(const std::string& text, std::size_t quote) {
  if (quote == 0 || text[quote - 1] != 'R') return 0;
  std::size_t start = quote - 1;
  while (start > 0 && is_ident(text[start - 1])) --start;
  const std::string prefix = text.substr(start, quote - start);
  return prefix == "R" || prefix == "u8R" || prefix == "uR" || prefix == "UR" || prefix == "LR" ? prefix.size() : 0;
}

// The end of the raw string whose '"' is text[quote]: past )delimiter".
std::size_t raw_end(const std::string& text, std::size_t quote) {
  const std::size_t open = text.find('(', quote);
  if (open == std::string::npos) return text.size();
  const std::string close = ")" + text.substr(quote + 1, open - quote - 1) + "\"";
  const std::size_t end = text.find(close, open);
  return end == std::string::npos ? text.size() : end + close.size();
}

// Whether the ' at text[i] is a digit separator (1'000): the identifier-like
// run before it starts with a digit.
bool digit_separator(const std::string& text, std::size_t i) {
  std::size_t start = i;
  while (start > 0 && (is_ident(text[start - 1]) || text[start - 1] == '\'')) --start;
  return start < i && std::isdigit(static_cast<unsigned char>(text[start]));
}

// The end of a bracket argument or comment [[...]], [=[...]=], ... opened at
// text[i], or npos when text[i] does not open one.
std::size_t bracket_end(const std::string& text, std::size_t i) {
  if (text[i] != '[') return std::string::npos;
  std::size_t j = i + 1;
  while (j < text.size() && text[j] == '=') ++j;
  if (j >= text.size() || text[j] != '[') return std::string::npos;
  const std::string close = "]" + std::string(j - i - 1, '=') + "]";
  const std::size_t end = text.find(close, j);
  return end == std::string::npos ? text.size() : end + close.size();
}

// PGOLF_DOC( string literals... ) at text[i] (core/doc.h): the end past its
// ')', or npos when text[i] starts no such call.
std::size_t doc_end(const std::string& text, std::size_t i) {
  static const std::string open = "PGOLF_DOC(";
  if (text.compare(i, open.size(), open) != 0 || (i > 0 && is_ident(text[i - 1]))) return std::string::npos;
  std::size_t j = i + open.size(), literals = 0;
  while (j < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[j]))) {
      ++j;
    } else if (text[j] == '"' && raw_prefix(text, j) == 0) {
      j = quoted_end(text, j);
      ++literals;
    } else {
      return text[j] == ')' && literals > 0 ? j + 1 : std::string::npos;
    }
  }
  return std::string::npos;
}

}  // namespace

std::string minify_cpp(const std::string& text) {
  Lines out;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (c == '/' && next == '/') {  // to the end of the line; a backslash before it continues the comment
      while (i < text.size() && !(text[i] == '\n' && text[i - 1] != '\\')) ++i;
    } else if (c == '/' && next == '*') {
      const std::size_t end = text.find("*/", i + 2);
      i = end == std::string::npos ? text.size() : end + 2;
      out.blank();
    } else if (c == '"' || (c == '\'' && !digit_separator(text, i))) {
      const std::size_t end = c == '"' && raw_prefix(text, i) ? raw_end(text, i) : quoted_end(text, i);
      out.verbatim(text, i, end);
      i = end;
    } else if (const std::size_t end = doc_end(text, i); end != std::string::npos) {
      for (char d : std::string("PGOLF_DOC(\"\")")) out.code(d);
      i = end;
    } else {
      if (c == '\n') out.newline();
      else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') out.blank();
      else out.code(c);
      ++i;
    }
  }
  return out.take();
}

std::string minify_cmake(const std::string& text) {
  Lines out;
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '#') {
      const std::size_t bracket = i + 1 < text.size() ? bracket_end(text, i + 1) : std::string::npos;
      i = bracket != std::string::npos ? bracket : text.find('\n', i);
      if (i == std::string::npos) i = text.size();
      out.blank();
    } else if (c == '"' || c == '\\' || bracket_end(text, i) != std::string::npos) {
      // A quoted argument, an escaped character or a bracket argument.
      const std::size_t end = c == '"' ? quoted_end(text, i) : c == '\\' ? std::min(i + 2, text.size()) : bracket_end(text, i);
      out.verbatim(text, i, end);
      i = end;
    } else {
      if (c == '\n') out.newline();
      else if (c == ' ' || c == '\t' || c == '\r') out.blank();
      else out.code(c);
      ++i;
    }
  }
  return out.take();
}

std::string minify_source(const std::string& path, const std::string& text) {
  if (ends_with(path, "CMakeLists.txt") || ends_with(path, ".cmake")) return minify_cmake(text);
  for (const char* ext : {".cpp", ".h", ".cu", ".cuh"})
    if (ends_with(path, ext)) return minify_cpp(text);
  return text;
}

}  // namespace pgolf
