// Reading the code archive (code_archive.h) in a train_gpt.py (script.h) back,
// for `pgolf unpack` and `pgolf inspect`: a tar of folders and regular files.
#pragma once
#include <string>
#include <vector>

namespace pgolf {

struct ArchiveMember {
  std::string path;  // relative, '/'-separated; a folder's without a trailing '/'
  bool dir;
  std::string data;  // empty for a folder
};

// The members of the code archive in the train_gpt.py `path`, in archive
// order. Throws, naming the file, when it holds no archive, or a member is
// neither a folder nor a regular file or its path is absolute or has a '..' part.
std::vector<ArchiveMember> read_code_archive(const std::string& path);

// Writes the members of the code archive in `path` under `dir`, which must not
// exist or be empty; returns them.
std::vector<ArchiveMember> unpack_code_archive(const std::string& path, const std::string& dir);

}  // namespace pgolf
