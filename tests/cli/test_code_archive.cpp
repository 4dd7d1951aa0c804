// The code archive read back with pgolf (unpack, inspect) and built as a tree
// of its own.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>

#include "helpers.h"
#include "tar_reader.h"
#include "tiny_corpus.h"
#include "pgolf/config/config.h"
#include "pgolf/core/io.h"
#include "pgolf/export/code_archive.h"

using namespace pgolf;
using test::TempDir;
namespace fs = std::filesystem;

namespace {

// The configure command of a tree unpacked into `src`, built in `src/b` with
// the LibTorch and CUDA setting of this build.
std::string configure_command(const std::string& src) {
  return std::string("'") + PGOLF_CMAKE_COMMAND + "' -S " + src + " -B " + src + "/b -G '" + PGOLF_CMAKE_GENERATOR +
         "' -DCMAKE_BUILD_TYPE=Release -DTorch_DIR='" + PGOLF_TORCH_DIR + "' -DPGOLF_CUDA=" + PGOLF_CUDA_SETTING;
}

// A tar holding one file at `path` (which may try to leave the folder).
std::string tar_with(const std::string& path) {
  std::string out;
  std::unique_ptr<struct archive, decltype(&archive_write_free)> a(archive_write_new(), archive_write_free);
  archive_write_set_format_ustar(a.get());
  archive_write_open(a.get(), &out, nullptr,
                     [](struct archive*, void* o, const void* d, size_t n) -> la_ssize_t {
                       static_cast<std::string*>(o)->append(static_cast<const char*>(d), n);
                       return static_cast<la_ssize_t>(n);
                     },
                     nullptr);
  std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(e.get(), path.c_str());
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0644);
  archive_entry_set_size(e.get(), 2);
  archive_write_header(a.get(), e.get());
  archive_write_data(a.get(), "x\n", 2);
  archive_write_close(a.get());
  return out;
}

std::string final_line(const std::string& out) {
  const auto at = out.find("final_sliding_window_exact");
  return at == std::string::npos ? std::string("missing") : out.substr(at, out.find('\n', at) - at);
}

}  // namespace

// The archive alone rebuilds pgolf: `pgolf unpack` writes the counted tree,
// which configures; `pgolf inspect` lists the same files.
TEST(CodeArchive, UnpackedTreeConfigures) {
  TempDir dir;
  for (Codec c : {Codec::Brotli, Codec::Zstd, Codec::Xz}) {
    const CodeArchive a = code_archive(c);
    write_file_atomic(dir.file(a.file_name), a.bytes);
    const std::string out = dir.file(std::string("src-") + codec_name(c));
    auto r = test::run_pgolf("unpack " + dir.file(a.file_name) + " --output " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(test::source_tree(out), test::counted_tree(PGOLF_SOURCE_DIR)) << codec_name(c);
  }
  const std::string src = dir.file("src-brotli");
  EXPECT_FALSE(fs::exists(src + "/tests"));
  EXPECT_FALSE(fs::exists(src + "/cmake/tools.cmake"));
  EXPECT_FALSE(fs::exists(src + "/src/data/download.cpp"));

  auto r = test::run_pgolf("inspect " + dir.file("pgolf-src.tar.br"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto counted = counted_sources();
  EXPECT_NE(r.output.find(std::to_string(counted.size()) + " files"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  src/train/train.cpp\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(std::to_string(code_archive(Codec::Brotli).bytes.size()) + " bytes compressed (brotli)"),
            std::string::npos) << r.output;

  r = test::run_shell(configure_command(src));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(src + "/b/CMakeCache.txt")) << r.output;
}

// `pgolf unpack` writes into a new or empty folder only, and never outside it.
TEST(CodeArchive, UnpackRefusesUsedFoldersAndEscapingPaths) {
  TempDir dir;
  const CodeArchive a = code_archive(Codec::Zstd);
  write_file_atomic(dir.file(a.file_name), a.bytes);
  make_dirs(dir.file("used"));
  test::write_text(dir.file("used/keep"), "mine");
  auto r = test::run_pgolf("unpack " + dir.file(a.file_name) + " --output " + dir.file("used"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("exists and is not an empty folder"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir.file("used/keep")), "mine");
  make_dirs(dir.file("empty"));
  r = test::run_pgolf("unpack " + dir.file(a.file_name) + " --output " + dir.file("empty"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir.file("empty/CMakeLists.txt")));

  for (const std::string evil : {"../evil", "a/../../evil", "/tmp/evil"}) {
    write_file_atomic(dir.file("evil.tar.xz"), compress(tar_with(evil), Codec::Xz));
    fs::remove_all(dir.file("out"));
    r = test::run_pgolf("unpack " + dir.file("evil.tar.xz") + " --output " + dir.file("out"));
    EXPECT_EQ(r.exit_code, 1) << evil;
    EXPECT_NE(r.output.find("would land outside the folder"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir.file("evil")));
    EXPECT_FALSE(fs::exists(dir.file("out")));
  }
  test::write_text(dir.file("junk.tar.br"), "not brotli");
  r = test::run_pgolf("unpack " + dir.file("junk.tar.br") + " --output " + dir.file("out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cannot decompress the code archive"), std::string::npos) << r.output;
}

// The counted tree builds a pgolf that trains and scores as this one does and
// writes the same code archive (slow: a build of pgolf on 2 cores).
TEST(CodeArchive, CountedTreeBuildsAndScoresTheSame) {
  TempDir dir;
  const Config c = test::tiny_run(dir, 8);
  test::write_text(dir.file("tiny.env"), format_config(c));
  auto full = test::run_pgolf("train --config " + dir.file("tiny.env"));
  ASSERT_EQ(full.exit_code, 0) << full.output;
  ASSERT_NE(final_line(full.output), "missing") << full.output;

  const std::string src = dir.file("src");
  auto r = test::run_pgolf("unpack " + dir.file("run/pgolf-src.tar.br") + " --output " + src);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // ccache (found by CMakeLists.txt) serves a rerun from any temporary folder.
  r = test::run_shell("export CCACHE_BASEDIR=" + dir.path() +
                      " CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime && " +
                      configure_command(src) + " && '" + PGOLF_CMAKE_COMMAND + "' --build " + src + "/b -j2 --target pgolf");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string counted = src + "/b/pgolf";
  r = test::run_shell(counted + " --help");
  EXPECT_EQ(r.output.find("download"), std::string::npos) << r.output;

  r = test::run_shell(counted + " train --config " + dir.file("tiny.env") + " --set RUN_ID=counted");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(final_line(r.output), final_line(full.output));
  EXPECT_EQ(read_file(dir.file("counted/pgolf-src.tar.br")), read_file(dir.file("run/pgolf-src.tar.br")));
  r = test::run_shell(counted + " eval " + dir.file("run/final_model.pgolf") + " --config " + dir.file("tiny.env"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(final_line(r.output), final_line(full.output));
}
