#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "helpers.h"
#include "pgolf/export/code_archive.h"
#include "pgolf/core/io.h"
#include "pgolf/export/submission.h"

using namespace pgolf;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

// The code of a submission: CMakeLists.txt and every file under cmake/,
// include/ and src/, by repository-relative path.
std::map<std::string, std::string> source_tree(const std::string& root) {
  std::map<std::string, std::string> files;
  files["CMakeLists.txt"] = read_file(root + "/CMakeLists.txt");
  for (const char* dir : {"cmake", "include", "src"})
    for (const auto& e : fs::recursive_directory_iterator(root + "/" + dir))
      if (!e.is_directory()) files[fs::relative(e.path(), root).generic_string()] = read_file(e.path().string());
  return files;
}

struct TarMember {
  std::string path;
  bool dir;
  int perm;
  long long mtime, uid, gid;
  std::string uname, gname, data;
};

std::vector<TarMember> read_tar(const std::string& tar) {
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

}  // namespace

TEST(CodeArchive, IsByteIdenticalWhenBuiltTwice) {
  const std::string tar = code_tar();
  EXPECT_EQ(tar.size() % 512, 0u);
  EXPECT_EQ(code_tar(), tar);
  for (Codec c : {Codec::Zstd, Codec::Xz, Codec::Brotli}) {
    const CodeArchive a = code_archive(c), b = code_archive(c);
    EXPECT_EQ(a.bytes, b.bytes) << codec_name(c);
    EXPECT_EQ(a.codec, c);
    EXPECT_EQ(a.tar_bytes, tar.size());
    EXPECT_EQ(decompress(a.bytes, c, a.tar_bytes), tar) << codec_name(c);
    std::printf("code archive %-18s raw %llu bytes, tar %llu bytes, %s %zu bytes\n", a.file_name.c_str(),
                static_cast<unsigned long long>(a.raw_bytes), static_cast<unsigned long long>(a.tar_bytes),
                codec_name(c), a.bytes.size());
  }
  EXPECT_EQ(code_archive(Codec::Xz).file_name, "pgolf-src.tar.xz");
  EXPECT_EQ(code_archive(Codec::Zstd).file_name, "pgolf-src.tar.zst");
  EXPECT_EQ(code_archive(Codec::Brotli).file_name, "pgolf-src.tar.br");
}

TEST(CodeArchive, HoldsExactlyTheSourceTree) {
  const auto disk = source_tree(PGOLF_SOURCE_DIR);
  const auto embedded = embedded_sources();
  ASSERT_TRUE(std::is_sorted(embedded.begin(), embedded.end()));
  std::vector<std::string> disk_paths, embedded_paths;
  for (const auto& [p, d] : disk) disk_paths.push_back(p);
  for (const auto& [p, d] : embedded) embedded_paths.push_back(p);
  ASSERT_EQ(embedded_paths, disk_paths) << "rebuild: the embedded sources are stale";
  std::uint64_t raw = 0;
  for (const auto& [p, d] : embedded) {
    EXPECT_EQ(d, disk.at(p)) << p << " differs from the file on disk (rebuild)";
    raw += d.size();
  }
  EXPECT_EQ(code_archive(Codec::Zstd).raw_bytes, raw);
  EXPECT_EQ(code_bytes(), code_archive(kCodeCodec).bytes.size());  // the budget counts the compressed archive
  EXPECT_LT(code_bytes(), raw / 3);

  // The tar: parent directories first, then files, all sorted, fixed metadata.
  const auto members = read_tar(code_tar());
  std::vector<std::string> files, expected_dirs, dirs;
  for (const auto& p : disk_paths)
    for (auto s = p.find('/'); s != std::string::npos; s = p.find('/', s + 1)) expected_dirs.push_back(p.substr(0, s) + "/");
  std::sort(expected_dirs.begin(), expected_dirs.end());
  expected_dirs.erase(std::unique(expected_dirs.begin(), expected_dirs.end()), expected_dirs.end());
  std::vector<std::string> order;
  for (const auto& m : members) {
    EXPECT_EQ(m.mtime, 0) << m.path;
    EXPECT_EQ(m.uid, 0) << m.path;
    EXPECT_EQ(m.gid, 0) << m.path;
    EXPECT_EQ(m.uname, "") << m.path;
    EXPECT_EQ(m.gname, "") << m.path;
    EXPECT_EQ(m.perm, m.dir ? 0755 : 0644) << m.path;
    const std::string key = m.dir ? (m.path.back() == '/' ? m.path : m.path + "/") : m.path;
    order.push_back(key);
    if (m.dir) {
      dirs.push_back(key);
      EXPECT_TRUE(m.data.empty());
    } else {
      files.push_back(m.path);
      EXPECT_EQ(m.data, disk.at(m.path)) << m.path;
      const auto slash = m.path.rfind('/');
      if (slash != std::string::npos) {
        EXPECT_NE(std::find(dirs.begin(), dirs.end(), m.path.substr(0, slash + 1)), dirs.end()) << m.path << " before its folder";
      }
    }
  }
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  EXPECT_EQ(files, disk_paths);
  EXPECT_EQ(dirs, expected_dirs);
}

// The archive alone rebuilds pgolf: unpacked into an empty folder, it configures.
TEST(CodeArchive, UnpackedTreeConfigures) {
  TempDir dir;
  const std::string path = dir.file("code.tar.xz");
  const CodeArchive a = code_archive(Codec::Xz);
  write_file_atomic(path, a.bytes);
  write_file_atomic(dir.file("code.tar"), decompress(read_file(path), Codec::Xz, a.tar_bytes));
  make_dirs(dir.file("src"));
  auto r = test::run_shell("tar -xf " + dir.file("code.tar") + " -C " + dir.file("src"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(source_tree(dir.file("src")), source_tree(PGOLF_SOURCE_DIR));
  EXPECT_FALSE(fs::exists(dir.file("src/tests")));
  r = test::run_shell(std::string("'") + PGOLF_CMAKE_COMMAND + "' -S " + dir.file("src") + " -B " + dir.file("src/b") +
                      " -G '" + PGOLF_CMAKE_GENERATOR + "' -DCMAKE_BUILD_TYPE=Release -DTorch_DIR='" + PGOLF_TORCH_DIR +
                      "' -DPGOLF_CUDA=" + PGOLF_CUDA_SETTING);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir.file("src/b/CMakeCache.txt"))) << r.output;
}
