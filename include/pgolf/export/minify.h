// The minifier of the code archive (code_archive.h): the counted code is the
// sources without their comments and layout, so the budget pays for code only.
// Deterministic and idempotent (minifying twice changes nothing), so a tree
// unpacked from the archive rebuilds the same archive.
#pragma once
#include <string>

namespace pgolf {

// C++ and CUDA: removes // and /* */ comments, leading and trailing white space
// of every line, blank lines and runs of spaces and tabs (one space is kept).
// String, character and raw string literals are copied unchanged, as are the
// line structure of preprocessor directives and backslash continuations; the
// one exception is documentation, PGOLF_DOC("..." "...") (core/doc.h), which
// becomes PGOLF_DOC("").
std::string minify_cpp(const std::string& text);

// CMake: removes # comments outside quoted arguments, leading and trailing
// white space of every line and blank lines; a quoted argument, which may span
// lines, is copied unchanged.
std::string minify_cmake(const std::string& text);

// minify_cpp or minify_cmake by the path's name (CMakeLists.txt, *.cmake);
// other files are returned unchanged.
std::string minify_source(const std::string& path, const std::string& text);

}  // namespace pgolf
