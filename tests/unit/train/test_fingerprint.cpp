// The fingerprint ranks compare before a run: what changes results differs,
// what does not (paths, run names, logging) does not; the comparison names
// the entry and both values; the store gathers every rank's string.
#include "pgolf/train/fingerprint.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "helpers.h"
#include "pgolf/core/io.h"
#include "tiny_corpus.h"

namespace pgolf {
namespace {

std::string mismatch(const std::string& a, const std::string& b) {
  try {
    check_same_fingerprints({a, b});
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// A rank's fingerprint, its inputs read as cmd_train reads them.
std::string fingerprint(const Config& c) { return run_fingerprint(c, input_identity(c)); }

TEST(Fingerprint, NamesWhatDiffersAndIgnoresWhereThingsAre) {
  test::TempDir dir;
  const Config c = test::tiny_run(dir, 4);
  const std::string base = fingerprint(c);
  EXPECT_EQ(mismatch(base, base), "");

  // The same data and tokenizer at other paths, another run name, log folder and logging: the same.
  Config moved = c;
  std::filesystem::copy(c.run.data_path, dir.file("data"));
  std::filesystem::copy_file(c.run.tokenizer_path, dir.file("tok.model"));
  moved.run.data_path = dir.file("data");
  moved.run.tokenizer_path = dir.file("tok.model");
  moved.run.run_id = "elsewhere";
  moved.run.log_dir = dir.file("logs");
  moved.train.train_log_every = 7;
  EXPECT_EQ(mismatch(base, fingerprint(moved)), "");

  Config lr = c;
  lr.optim.matrix_lr = 0.5;
  EXPECT_NE(mismatch(base, fingerprint(lr)).find("rank 1 differs from rank 0 in config.MATRIX_LR: rank 0 has '0.025', rank 1 has '0.5'"),
            std::string::npos);

  // One byte of the moved validation shard, then of the moved tokenizer.
  std::string val = read_file(dir.file("data/fineweb_val_000000.bin"));
  val[2000] ^= 1;
  test::write_text(dir.file("data/fineweb_val_000000.bin"), val);
  EXPECT_NE(mismatch(base, fingerprint(moved)).find("in data.fineweb_val_000000.bin: rank 0 has 'bytes:"), std::string::npos);
  std::string tok = read_file(dir.file("tok.model"));
  tok[tok.size() / 2] ^= 1;
  test::write_text(dir.file("tok.model"), tok);
  std::filesystem::copy_file(c.run.data_path + "/fineweb_val_000000.bin", dir.file("data/fineweb_val_000000.bin"),
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_NE(mismatch(base, fingerprint(moved)).find("in tokenizer: rank 0 has 'bytes:"), std::string::npos);
  // An entry only one side has.
  EXPECT_NE(mismatch(base, base + "data.extra=1\n").find("in data.extra: rank 0 has '(none)', rank 1 has '1'"), std::string::npos);
}

TEST(Fingerprint, EveryRankGetsEveryRanksString) {
  test::run_two_ranks(test::test_port(40), [](Dist& dist, int rank) {
    const std::vector<std::string> all = dist.gather_strings("fp", "rank " + std::to_string(rank));
    EXPECT_EQ(all, (std::vector<std::string>{"rank 0", "rank 1"})) << "on rank " << rank;
  });
}

}  // namespace
}  // namespace pgolf
