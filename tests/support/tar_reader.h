// Code archive tests: the source tree on disk and the members of a tar.
#pragma once
#include <gtest/gtest.h>
#include <archive.h>
#include <archive_entry.h>
#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include "helpers.h"
#include "pgolf/export/code_archive.h"
#include "pgolf/export/minify.h"
#include "pgolf/core/io.h"
#include "pgolf/export/submission.h"

namespace pgolf::test {

// The code of a submission: CMakeLists.txt and every file under cmake/,
// include/ and src/, by repository-relative path.
inline std::map<std::string, std::string> source_tree(const std::string& root) {
  std::map<std::string, std::string> files;
  files["CMakeLists.txt"] = read_file(root + "/CMakeLists.txt");
  for (const char* dir : {"cmake", "include", "src"})
    for (const auto& e : std::filesystem::recursive_directory_iterator(root + "/" + dir))
      if (!e.is_directory()) files[std::filesystem::relative(e.path(), root).generic_string()] = read_file(e.path().string());
  return files;
}

// The counted part of source_tree(): less cmake/tools.cmake's PGOLF_TOOL_FILES,
// each file minified, as the code archive holds them.
inline std::map<std::string, std::string> counted_tree(const std::string& root) {
  auto files = source_tree(root);
  const std::string cmake = read_file(root + "/cmake/tools.cmake");
  const auto begin = cmake.find("set(PGOLF_TOOL_FILES"), end = cmake.find(')', begin);
  EXPECT_NE(begin, std::string::npos) << "cmake/tools.cmake sets no PGOLF_TOOL_FILES";
  std::istringstream list(cmake.substr(begin + 20, end - begin - 20));
  for (std::string path; list >> path;) EXPECT_EQ(files.erase(path), 1u) << path << " (PGOLF_TOOL_FILES) is missing";
  for (auto& [path, data] : files) data = minify_source(path, data);
  return files;
}

struct TarMember {
  std::string path;
  bool dir;
  int perm;
  long long mtime, uid, gid;
  std::string uname, gname, data;
};

inline std::vector<TarMember> read_tar(const std::string& tar) {
  std::unique_ptr<struct archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  EXPECT_EQ(archive_read_open_memory(a.get(), tar.data(), tar.size()), ARCHIVE_OK);
  std::vector<TarMember> out;
  struct archive_entry* e;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    EXPECT_EQ(archive_format(a.get()), ARCHIVE_FORMAT_TAR_USTAR);
    TarMember m{archive_entry_pathname(e), archive_entry_filetype(e) == AE_IFDIR, int(archive_entry_perm(e)),
                archive_entry_mtime(e), archive_entry_uid(e), archive_entry_gid(e),
                archive_entry_uname(e) ? archive_entry_uname(e) : "", archive_entry_gname(e) ? archive_entry_gname(e) : "",
                ""};
    EXPECT_TRUE(m.dir || archive_entry_filetype(e) == AE_IFREG) << m.path;
    m.data.resize(archive_entry_size(e));
    if (!m.data.empty()) {
      EXPECT_EQ(archive_read_data(a.get(), m.data.data(), m.data.size()), la_ssize_t(m.data.size()));
    }
    out.push_back(std::move(m));
  }
  EXPECT_EQ(r, ARCHIVE_EOF) << archive_error_string(a.get());
  return out;
}

}  // namespace pgolf::test
