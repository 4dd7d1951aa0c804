#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "helpers.h"
#include "tar_reader.h"
#include "pgolf/config/components.h"
#include "pgolf/export/code_archive.h"
#include "pgolf/export/minify.h"
#include "pgolf/core/io.h"

using namespace pgolf;
using test::TempDir;
namespace fs = std::filesystem;

using test::counted_tree;
using test::read_tar;
using test::source_tree;

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
    std::printf("code archive: raw %llu bytes, tar %llu bytes, %s %zu bytes\n", static_cast<unsigned long long>(a.raw_bytes),
                static_cast<unsigned long long>(a.tar_bytes), codec_name(c), a.bytes.size());
  }
}

// The archive holds the counted files (the tree less the tools), minified.
TEST(CodeArchive, HoldsExactlyTheCountedTree) {
  const auto tree = source_tree(PGOLF_SOURCE_DIR);
  const auto disk = counted_tree(PGOLF_SOURCE_DIR);
  const auto embedded = embedded_sources();
  ASSERT_TRUE(std::is_sorted(embedded.begin(), embedded.end()));
  std::vector<std::string> disk_paths, embedded_paths;
  for (const auto& [p, d] : disk) disk_paths.push_back(p);
  for (const auto& [p, d] : embedded) embedded_paths.push_back(p);
  ASSERT_EQ(embedded_paths, disk_paths) << "rebuild: the embedded sources are stale";
  for (const char* tool : {"src/data/download.cpp", "src/core/http.cpp", "src/app/bench.cpp", "src/eval/stats.cpp",
                           "src/data/tokenizer_train.cpp", "cmake/tools.cmake"})
    EXPECT_EQ(disk.count(tool), 0u) << tool;
  std::uint64_t raw = 0;
  for (const auto& [p, d] : embedded) {
    EXPECT_EQ(d, tree.at(p)) << p << " differs from the file on disk (rebuild)";
    raw += disk.at(p).size();
  }
  EXPECT_EQ(code_archive(Codec::Zstd).raw_bytes, raw);
  EXPECT_LT(code_archive(Codec::Xz).bytes.size(), raw / 3);

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


// Minifying the counted files again changes nothing, so a tree unpacked from
// the archive embeds, and archives, the same bytes.
TEST(CodeArchive, CountedFilesAreMinifiedToAFixedPoint) {
  for (const auto& [path, data] : counted_sources()) EXPECT_EQ(minify_source(path, data), data) << path;
}

// The counted code of a configuration leaves out the sources of the optional
// components it does not use (cmake/components.cmake, config/components.h),
// and only those; the headers stay.
TEST(CodeArchive, LeavesOutTheComponentsAConfigurationDoesNotUse) {
  std::map<std::string, std::vector<std::string>> files_of;
  for (std::size_t i = 0; i < pgolf::detail::kComponentFileCount; ++i)
    files_of[pgolf::detail::kComponentFiles[i].component].push_back(pgolf::detail::kComponentFiles[i].path);
  ASSERT_EQ(files_of.size(), components().size());
  for (const Component& c : components()) {
    EXPECT_TRUE(c.present) << c.name << ": the full build has every component";
    EXPECT_EQ(c.used(Config{}), false) << c.name << " is off by default";
    EXPECT_FALSE(files_of[c.name].empty()) << c.name;
  }
  auto paths = [](const Config& cfg) {
    std::set<std::string> out;
    for (const auto& [path, data] : counted_sources(cfg)) out.insert(path);
    return out;
  };
  std::set<std::string> all;
  for (const auto& [path, data] : counted_sources()) all.insert(path);
  const Config plain;
  const std::set<std::string> lean = paths(plain);
  for (const auto& [name, files] : files_of)
    for (const std::string& f : files) {
      EXPECT_EQ(all.count(f), 1u) << f;
      EXPECT_EQ(lean.count(f), 0u) << f << " of " << name << ", which the default does not use";
    }
  EXPECT_EQ(files_of["MINIFIER"], std::vector<std::string>{"src/export/minify.cpp"});
  EXPECT_EQ(all.size() - lean.size(), pgolf::detail::kComponentFileCount);
  EXPECT_EQ(lean.count("include/pgolf/eval/ttt.h"), 1u);

  Config ttt = plain;
  ttt.ttt.ttt_enabled = true;
  Config gptq = plain;
  gptq.export_.quant_attn = parse_tensor_plan("int6,gptq");
  Config lqer = plain;
  lqer.export_.lqer_tensors = 2;
  Config graphs = plain;
  graphs.runtime.cuda_graphs = true;
  Config fused = plain;
  fused.runtime.fused_kernels = true;
  Config checkpoints = plain;
  checkpoints.train.checkpoint_minutes = 5;
  for (const auto& [cfg, name] : {std::pair<const Config&, const char*>{ttt, "TTT"}, {gptq, "GPTQ"}, {lqer, "LQER"},
                                  {graphs, "CUDA_GRAPHS"}, {fused, "CUDA_KERNELS"}, {checkpoints, "CHECKPOINTS"}}) {
    std::set<std::string> expected = lean;
    expected.insert(files_of[name].begin(), files_of[name].end());
    EXPECT_EQ(paths(cfg), expected) << name;
  }
}
