// The code archive unpacked and configured as a tree of its own.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "helpers.h"
#include "tar_reader.h"
#include "pgolf/export/code_archive.h"
#include "pgolf/core/io.h"
#include "pgolf/export/submission.h"

using namespace pgolf;
using test::TempDir;
namespace fs = std::filesystem;

using test::source_tree;

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
