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

#include "pgolf/config/config.h"
#include "pgolf/core/codec.h"

namespace pgolf {

// The embedded files as (repository-relative path, bytes), sorted by path.
std::vector<std::pair<std::string, std::string>> embedded_sources();

// The same, each minified (minify_source(); a tree unpacked from the counted
// code, which has no minifier, is minified already): the files of the archive.
std::vector<std::pair<std::string, std::string>> counted_sources();
// ... less the sources of the optional components `cfg` does not use
// (config/components.h): the counted code of that configuration.
std::vector<std::pair<std::string, std::string>> counted_sources(const Config& cfg);

// A POSIX ustar archive of `files` (counted_sources()) with their parent
// directories, sorted by path, mtime 0, owner 0:0 with empty names, modes
// 0644 and 0755.
std::string code_tar(const std::vector<std::pair<std::string, std::string>>& files);
std::string code_tar();  // of counted_sources()

struct CodeArchive {
  std::string bytes;         // compress(code_tar(files), codec)
  std::uint64_t raw_bytes;   // sum of the counted (minified) file sizes
  std::uint64_t tar_bytes;   // size of the tar, what decompress() must be told
  Codec codec;
};

CodeArchive code_archive(Codec c, const std::vector<std::pair<std::string, std::string>>& files);
CodeArchive code_archive(Codec c);  // of counted_sources()

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
// cmake/components.cmake: each optional component's files, a row per file.
struct ComponentFile {
  const char* component;
  const char* path;
};
extern const ComponentFile kComponentFiles[];
extern const std::size_t kComponentFileCount;
extern const char kBuildCommit[];
}  // namespace detail

}  // namespace pgolf
