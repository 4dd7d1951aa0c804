// train_gpt.py's code archive read back with pgolf (unpack, inspect) and by
// Python, and built as a tree of its own.
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
#include "pgolf/export/script.h"

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

// Python itself (an independent reader) gives back every byte of the
// literal, NUL before each digit included, from a file declared latin-1.
TEST(Script, PythonReadsTheLatin1LiteralAsTheBytes) {
  TempDir dir;
  std::string bytes;
  for (int b = 0; b < 256; ++b) bytes += static_cast<char>(b);
  for (char d = '0'; d <= '9'; ++d) bytes += std::string(1, '\0') + d + '"' + '\\';
  write_file_atomic(dir.file("p.py"), "# coding:latin-1\nimport sys\nP=\"" + latin1_literal(bytes) +
                                          "\"\nopen(sys.argv[1],'wb').write(P.encode('latin-1'))\n");
  const auto r = test::run_shell("python3 " + dir.file("p.py") + " " + dir.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(dir.file("out")), bytes);
}

// train_gpt.py alone rebuilds pgolf: `pgolf unpack` writes the counted tree,
// which configures; `pgolf inspect` lists the same files; Python reads its
// configuration and archive as pgolf wrote them.
TEST(CodeArchive, UnpackedTreeConfigures) {
  TempDir dir;
  Config c;
  c.run.data_path = "/data/with \"quotes\", \\ and caf\xc3\xa9";  // UTF-8 bytes pass through latin-1 unchanged
  const std::string script = submission_script(c);
  write_file_atomic(dir.file("train_gpt.py"), script);
  const std::string src = dir.file("src");
  auto r = test::run_pgolf("unpack " + dir.file("train_gpt.py") + " --output " + src);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The counted tree (the embedded files are the tree on disk: CodeArchive.HoldsExactlyTheCountedTree)
  // less the optional components the default does not use.
  const auto counted = counted_sources(c);
  EXPECT_EQ(test::source_tree(src), (std::map<std::string, std::string>(counted.begin(), counted.end())));
  EXPECT_FALSE(fs::exists(src + "/src/eval/ttt.cpp"));
  EXPECT_FALSE(fs::exists(src + "/tests"));
  EXPECT_FALSE(fs::exists(src + "/cmake/tools.cmake"));
  EXPECT_FALSE(fs::exists(src + "/src/data/download.cpp"));

  r = test::run_pgolf("inspect " + dir.file("train_gpt.py"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(std::to_string(counted.size()) + " files"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  src/train/train.cpp\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the script: " + std::to_string(script.size()) + " bytes"), std::string::npos) << r.output;

  // Python runs the script's assignments (reading it as its first line
  // declares) and decodes the archive and the configuration itself.
  test::write_text(dir.file("read.py"),
                   "import lzma,sys\nsrc=open(sys.argv[1],'rb').read()\nns={}\nexec(src[:src.index(b'\\nd=')],ns)\n"
                   "sys.stdout.buffer.write(b'%d\\n' % len(lzma.decompress(ns['P'].encode('latin-1')))"
                   "+ns['C'].encode('latin-1'))\n");
  r = test::run_shell("python3 " + dir.file("read.py") + " " + dir.file("train_gpt.py"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, std::to_string(code_tar(counted).size()) + "\n" + recorded_config(c));

  r = test::run_shell(configure_command(src));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(src + "/b/CMakeCache.txt")) << r.output;
}

// `pgolf unpack` writes into a new or empty folder only, and never outside it.
TEST(CodeArchive, UnpackRefusesUsedFoldersAndEscapingPaths) {
  TempDir dir;
  write_file_atomic(dir.file("train_gpt.py"), submission_script(Config{}));
  make_dirs(dir.file("used"));
  test::write_text(dir.file("used/keep"), "mine");
  auto r = test::run_pgolf("unpack " + dir.file("train_gpt.py") + " --output " + dir.file("used"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("exists and is not an empty folder"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir.file("used/keep")), "mine");
  make_dirs(dir.file("empty"));
  r = test::run_pgolf("unpack " + dir.file("train_gpt.py") + " --output " + dir.file("empty"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir.file("empty/CMakeLists.txt")));

  for (const std::string evil : {"../evil", "a/../../evil", "/tmp/evil"}) {
    write_file_atomic(dir.file("evil.py"), submission_script("", compress(tar_with(evil), Codec::Xz)));
    fs::remove_all(dir.file("out"));
    r = test::run_pgolf("unpack " + dir.file("evil.py") + " --output " + dir.file("out"));
    EXPECT_EQ(r.exit_code, 1) << evil;
    EXPECT_NE(r.output.find("would land outside the folder"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir.file("evil")));
    EXPECT_FALSE(fs::exists(dir.file("out")));
  }
  test::write_text(dir.file("junk.py"), "print('no archive')\n");
  r = test::run_pgolf("unpack " + dir.file("junk.py") + " --output " + dir.file("out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no code archive in it"), std::string::npos) << r.output;
}

// The run's train_gpt.py, started by torchrun with two ranks in another
// folder (local rank 0 unpacks and builds while rank 1 waits for it), trains
// and scores as this build does under the same launch and writes the same
// train_gpt.py; the pgolf it built, without the optional components the
// configuration does not use, scores the artifact as this one does and
// refuses a configuration that needs one (slow: a build of pgolf on 2 cores).
TEST(CodeArchive, CountedTreeBuildsAndScoresTheSame) {
  TempDir dir;
  const Config c = test::tiny_run(dir, 8);
  test::write_text(dir.file("tiny.env"), format_config(c));
  // torchrun and the Python of the LibTorch this build uses (scripts/setup.sh's .venv).
  const std::string torchrun = std::string("PATH=") + PGOLF_SOURCE_DIR +
                               "/.venv/bin:$PATH OMP_NUM_THREADS=1 NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 ";
  auto full = test::run_shell(torchrun + "--no-python " + PGOLF_BINARY + " train --config " + dir.file("tiny.env"));
  ASSERT_EQ(full.exit_code, 0) << full.output;
  ASSERT_NE(final_line(full.output), "missing") << full.output;

  // ccache (found by CMakeLists.txt) serves a rerun from any temporary folder.
  make_dirs(dir.file("elsewhere"));
  auto r = test::run_shell("cd " + dir.file("elsewhere") + " && export CCACHE_BASEDIR=" + dir.path() +
                           " CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime SEED=" +
                           std::to_string(c.run.seed) + " PGOLF_BUILD_DIR=" + dir.file("pb") + " && " + torchrun +
                           dir.file("run/train_gpt.py") + " --set LOG_DIR=" + dir.path() + " --set RUN_ID=counted");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("launcher:torchrun world_size:2"), std::string::npos) << r.output;
  EXPECT_EQ(final_line(r.output), final_line(full.output));
  EXPECT_EQ(read_file(dir.file("counted/train_gpt.py")), read_file(dir.file("run/train_gpt.py")));
  std::string tree;
  for (const auto& build : fs::directory_iterator(dir.file("pb"))) tree = build.path().string();
  const std::string counted = tree + "/b/pgolf";
  ASSERT_TRUE(fs::exists(counted)) << counted;
  r = test::run_shell(counted + " --help");
  EXPECT_EQ(r.output.find("download"), std::string::npos) << r.output;
  // Built without the components the configuration does not use, it refuses one that does.
  EXPECT_FALSE(fs::exists(tree + "/src/src/eval/ttt.cpp"));
  EXPECT_TRUE(fs::exists(tree + "/src/include/pgolf/eval/ttt.h"));
  r = test::run_shell(counted + " config --config " + dir.file("tiny.env") + " --set TTT_ENABLED=1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("TTT_ENABLED=1 needs TTT, which this pgolf was built without"), std::string::npos) << r.output;
  const std::string eval = " eval " + dir.file("run/final_model.pgolf") + " --config " + dir.file("tiny.env");
  auto full_eval = test::run_pgolf(eval);
  r = test::run_shell(counted + eval);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_NE(final_line(full_eval.output), "missing") << full_eval.output;
  EXPECT_EQ(final_line(r.output), final_line(full_eval.output));
}
