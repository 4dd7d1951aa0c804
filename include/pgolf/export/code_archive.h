// The code of a submission as a reproducible archive: the source files needed
// to rebuild pgolf without the tools (CMakeLists.txt, cmake/, include/, src/
// less cmake/tools.cmake's PGOLF_TOOL_FILES), embedded into the binary at
// build time, minified (export/minify.h), written as a tar that is
// byte-identical for the same tree, then compressed (xz in the submission's train_gpt.py, export/script.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pgolf/core/codec.h"

namespace pgolf {

// The embedded files as (repository-relative path, bytes), sorted by path.
std::vector<std::pair<std::string, std::string>> embedded_sources();

// The same, each minified (minify_source()): the files of the archive.
std::vector<std::pair<std::string, std::string>> counted_sources();

// A POSIX ustar archive of the counted files with their parent directories,
// sorted by path, mtime 0, owner 0:0 with empty names, modes 0644 and 0755.
std::string code_tar();

struct CodeArchive {
  std::string bytes;         // compress(code_tar(), codec)
  std::uint64_t raw_bytes;   // sum of the counted (minified) file sizes
  std::uint64_t tar_bytes;   // size of code_tar(), what decompress() must be told
  Codec codec;
};

CodeArchive code_archive(Codec c);

// The git commit the embedded files were taken at (12 hex digits),
// "<commit>+changes" when they differed from it, "none" outside a checkout.
// Recorded when the embedded files change, so a later commit of the same
// files still shows the earlier one: the files are what is exact.
std::string build_commit();


namespace detail {
// Defined in the generated pgolf_embedded_sources.cpp (cmake/embed_sources.cmake).
struct EmbeddedSource {
  const char* path;
  const char* data;
  std::size_t size;
};
extern const EmbeddedSource kEmbeddedSources[];
extern const std::size_t kEmbeddedSourceCount;
extern const char kBuildCommit[];
}  // namespace detail

}  // namespace pgolf
