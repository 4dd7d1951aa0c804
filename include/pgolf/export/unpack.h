// Reading a code archive (code_archive.h) back, for `pgolf unpack` and
// `pgolf inspect`: the file is decompressed by its name's extension and read
// as a tar of folders and regular files.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "pgolf/core/codec.h"

namespace pgolf {

struct ArchiveMember {
  std::string path;  // relative, '/'-separated; a folder's without a trailing '/'
  bool dir;
  std::string data;  // empty for a folder
};

// The codec of a code archive by its name (.tar.br, .tar.zst, .tar.xz, or
// .br, .zst, .xz); nullopt for other names.
std::optional<Codec> code_archive_codec(const std::string& path);

// The members of the code archive file `path`, in archive order. Throws,
// naming the file, when it is no such archive, or a member is neither a
// folder nor a regular file or its path is absolute or has a '..' part.
std::vector<ArchiveMember> read_code_archive(const std::string& path);

// Writes the members of the code archive `path` under `dir`, which must not
// exist or be empty; returns them.
std::vector<ArchiveMember> unpack_code_archive(const std::string& path, const std::string& dir);

}  // namespace pgolf
