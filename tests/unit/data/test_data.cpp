#include <sys/wait.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <numeric>

#include "helpers.h"
#include "pgolf/data/data.h"
#include "pgolf/train/transfer.h"

using namespace pgolf;
using pgolf::test::TempDir;
using pgolf::test::write_text;

namespace {

std::vector<std::uint16_t> iota_tokens(std::size_t n, std::uint16_t start = 0) {
  std::vector<std::uint16_t> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

ShardError::Kind error_kind(const std::string& path, std::string* message = nullptr) {
  try {
    Shard s(path);
  } catch (const ShardError& e) {
    if (message) *message = e.what();
    return e.kind;
  }
  ADD_FAILURE() << "no error for " << path;
  return ShardError::NoFiles;
}

// A valid shard's bytes with one int32 of the header or the size changed.
std::string shard_bytes(std::size_t tokens) {
  std::string b(kShardHeaderBytes + 2 * tokens, '\0');
  std::int32_t h[3] = {kShardMagic, kShardVersion, static_cast<std::int32_t>(tokens)};
  std::memcpy(b.data(), h, sizeof h);
  return b;
}

void set_header(std::string& b, int index, std::int32_t v) { std::memcpy(b.data() + 4 * index, &v, 4); }

}  // namespace

TEST(Shard, WriteReadRoundTrip) {
  TempDir dir;
  auto tokens = iota_tokens(1000, 60000);  // values above 32767 check unsigned reads
  write_shard(dir.file("s.bin"), tokens);
  EXPECT_EQ(std::filesystem::file_size(dir.file("s.bin")), 1024u + 2 * 1000);
  Shard s(dir.file("s.bin"));
  ASSERT_EQ(s.num_tokens(), 1000u);
  EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), s.tokens()));
  // Nothing but the final file is left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

// A shard is read whole when it is opened: truncating the file in place
// afterwards (another process rewriting it) changes nothing the run reads —
// a memory map would end the process with a bus error at the next page — and
// opening it again names the damage.
TEST(Shard, ATruncationInPlaceAfterOpeningChangesNothingRead) {
  TempDir dir;
  std::vector<std::uint16_t> tokens(100000);
  std::iota(tokens.begin(), tokens.end(), 0);
  const std::string path = dir.file("fineweb_train_000000.bin");
  write_shard(path, tokens);
  const Shard shard(path);
  std::filesystem::resize_file(path, kShardHeaderBytes + 10);
  EXPECT_EQ(std::vector<std::uint16_t>(shard.tokens(), shard.tokens() + shard.num_tokens()), tokens);
  try {
    Shard again(path);
    ADD_FAILURE() << "a truncated shard opened";
  } catch (const ShardError& e) {
    EXPECT_EQ(e.kind, ShardError::TruncatedBody) << e.what();
  }
}

TEST(Shard, HeaderIsTheOfficialLayout) {
  TempDir dir;
  write_shard(dir.file("s.bin"), iota_tokens(3));
  std::string b = read_file(dir.file("s.bin"));
  std::int32_t h[256];
  std::memcpy(h, b.data(), sizeof h);
  EXPECT_EQ(h[0], 20240520);
  EXPECT_EQ(h[1], 1);
  EXPECT_EQ(h[2], 3);
  for (int i = 3; i < 256; ++i) EXPECT_EQ(h[i], 0);
  EXPECT_EQ(static_cast<unsigned char>(b[1024 + 2]), 1);  // token 1, little endian
}

TEST(Shard, EachCorruptionHasItsOwnError) {
  TempDir dir;
  std::string msg;

  write_text(dir.file("short.bin"), std::string(100, '\0'));
  EXPECT_EQ(error_kind(dir.file("short.bin"), &msg), ShardError::TruncatedHeader);
  EXPECT_NE(msg.find("short.bin"), std::string::npos);

  std::string b = shard_bytes(10);
  set_header(b, 0, 12345);
  write_text(dir.file("magic.bin"), b);
  EXPECT_EQ(error_kind(dir.file("magic.bin"), &msg), ShardError::BadMagic);
  EXPECT_NE(msg.find("magic.bin': bad magic 12345"), std::string::npos) << msg;

  b = shard_bytes(10);
  set_header(b, 1, 2);
  write_text(dir.file("version.bin"), b);
  EXPECT_EQ(error_kind(dir.file("version.bin"), &msg), ShardError::BadVersion);
  EXPECT_NE(msg.find("version.bin': unsupported version 2"), std::string::npos) << msg;

  b = shard_bytes(10);
  b.resize(b.size() - 3);
  write_text(dir.file("trunc.bin"), b);
  EXPECT_EQ(error_kind(dir.file("trunc.bin"), &msg), ShardError::TruncatedBody);
  EXPECT_NE(msg.find("trunc.bin': truncated body"), std::string::npos) << msg;

  b = shard_bytes(10) + "xx";
  write_text(dir.file("long.bin"), b);
  EXPECT_EQ(error_kind(dir.file("long.bin"), &msg), ShardError::SizeMismatch);
  EXPECT_NE(msg.find("long.bin': size mismatch"), std::string::npos) << msg;

  try {
    shard_files(dir.file("nothing_*.bin"));
    ADD_FAILURE() << "empty glob accepted";
  } catch (const ShardError& e) {
    EXPECT_EQ(e.kind, ShardError::NoFiles);
    EXPECT_NE(std::string(e.what()).find("nothing_*.bin"), std::string::npos);
  }
}

TEST(TokenStream, ReadsSortedShardsAndWrapsAround) {
  TempDir dir;
  write_shard(dir.file("fineweb_train_000001.bin"), iota_tokens(5, 100));  // 100..104
  write_shard(dir.file("fineweb_train_000000.bin"), iota_tokens(3, 0));    // 0..2
  TokenStream s(shard_files(train_pattern(dir.path())), 1024);
  EXPECT_EQ(s.take(4), (std::vector<std::uint16_t>{0, 1, 2, 100}));
  auto saved = s.position();
  EXPECT_EQ(s.take(6), (std::vector<std::uint16_t>{101, 102, 103, 104, 0, 1}));
  s.seek(saved);
  EXPECT_EQ(s.take(2), (std::vector<std::uint16_t>{101, 102}));
  EXPECT_EQ(s.take(13).size(), 13u);  // more than a whole pass
  s.seek({1, 5});  // the end of a shard is a position too
  EXPECT_EQ(s.take(1), (std::vector<std::uint16_t>{0}));
  // A position outside the stream (a checkpoint of other shards) is an error.
  auto seek_error = [&](TokenStream::Position p) {
    try {
      s.seek(p);
    } catch (const std::out_of_range& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(seek_error({2, 0}), "stream position in shard 2, but the stream has 2 shards");
  EXPECT_NE(seek_error({1, 6}).find("stream position at token 6 of '" + dir.file("fineweb_train_000001.bin") + "', which has 5"),
            std::string::npos);
}

// Every shard's header and size are checked when the stream is made: a
// truncated third shard is an error at once, naming it, not when the stream
// reaches it. The stream knows its length.
TEST(TokenStream, ChecksEveryShardAtTheStart) {
  TempDir dir;
  for (int i = 0; i < 3; ++i) write_shard(dir.file("fineweb_train_00000" + std::to_string(i) + ".bin"), iota_tokens(100));
  EXPECT_EQ(TokenStream(shard_files(train_pattern(dir.path())), 1024).total_tokens(), 300u);
  std::filesystem::resize_file(dir.file("fineweb_train_000002.bin"), kShardHeaderBytes + 150);
  try {
    TokenStream s(shard_files(train_pattern(dir.path())), 1024);
    FAIL() << "no error";
  } catch (const ShardError& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt shard '" + dir.file("fineweb_train_000002.bin") + "': truncated body"),
              std::string::npos)
        << e.what();
  }
}

// docs/MODEL.md ("Data") by hand: a stream of 0,1,2,...; world size W, grad_accum 8/W,
// global batch G, seq_len L. Per micro-step local = G/(W*A), each rank reads
// local+1 tokens starting at step*(local+1)*W + r*(local+1).
TEST(DistributedTokenLoader, SlicesMatchHandComputationForWorldSizes1248) {
  TempDir dir;
  write_shard(dir.file("fineweb_train_000000.bin"), iota_tokens(50000));
  const std::int64_t G = 512, L = 16;
  for (int W : {1, 2, 4, 8}) {
    const std::int64_t A = grad_accum_steps(W);
    EXPECT_EQ(A, 8 / W);
    const std::int64_t local = G / (W * A);
    EXPECT_EQ(local, 64);  // G / 8 whatever the world size
    for (int r = 0; r < W; ++r) {
      DistributedTokenLoader loader(shard_files(train_pattern(dir.path())), r, W);
      for (int step = 0; step < 3; ++step) {
        Batch b = loader.next_batch(G, L, A);
        ASSERT_EQ(b.rows, local / L);
        ASSERT_EQ(b.seq_len, L);
        ASSERT_EQ(b.inputs.size(), static_cast<std::size_t>(local));
        const std::int64_t start = step * (local + 1) * W + r * (local + 1);
        for (std::int64_t i = 0; i < local; ++i) {
          ASSERT_EQ(b.inputs[i], start + i) << "W=" << W << " r=" << r << " step=" << step;
          ASSERT_EQ(b.targets[i], start + i + 1);
        }
      }
    }
  }
}

// The prefetcher hands out next_batch's tokens in next_batch's order, while
// one batch is always taken ahead; position() is that of the batch it hands
// out next, and seek() drops the one taken ahead.
TEST(BatchPrefetcher, SameBatchesAsTheLoaderAndSeeksBack) {
  TempDir dir;
  write_shard(dir.file("fineweb_train_000000.bin"), iota_tokens(5000));
  const auto files = shard_files(train_pattern(dir.path()));
  DistributedTokenLoader reference(files, 1, 2), loader(files, 1, 2);
  BatchPrefetcher batches(loader, {256, 16, 4}, at::kCPU);
  const TokenStream::Position start = batches.position();
  std::vector<at::Tensor> first;
  for (int k = 0; k < 3; ++k) {
    Batch b = reference.next_batch(256, 16, 4);
    auto [x, y] = batches.next();
    ASSERT_EQ(x.sizes(), at::IntArrayRef({b.rows, 16}));
    EXPECT_EQ(x.scalar_type(), at::kLong);
    EXPECT_TRUE(at::equal(x.reshape({-1}), at::tensor(b.inputs, at::kLong))) << "batch " << k;
    EXPECT_TRUE(at::equal(y.reshape({-1}), at::tensor(b.targets, at::kLong))) << "batch " << k;
    EXPECT_EQ(batches.position(), reference.stream().position()) << "batch " << k;
    EXPECT_FALSE(loader.stream().position() == reference.stream().position());  // one batch ahead
    first.push_back(x);
  }
  batches.seek(start);
  EXPECT_EQ(batches.position(), start);
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(at::equal(batches.next().first, first[k])) << "after seek, batch " << k;
}

TEST(DistributedTokenLoader, RanksTogetherCoverEachChunkWithoutOverlap) {
  TempDir dir;
  write_shard(dir.file("fineweb_train_000000.bin"), iota_tokens(4000));
  const int W = 4;
  std::vector<int> seen(4000, 0);
  for (int r = 0; r < W; ++r) {
    DistributedTokenLoader loader(shard_files(train_pattern(dir.path())), r, W);
    Batch b = loader.next_batch(256, 8, grad_accum_steps(W));
    for (auto t : b.inputs) seen[t]++;
    seen[b.targets.back()]++;  // the extra token of the rank's span
  }
  for (int i = 0; i < (256 / 8 + 1) * W; ++i) EXPECT_EQ(seen[i], 1) << i;
  EXPECT_EQ(seen[(256 / 8 + 1) * W], 0);
}

TEST(DistributedTokenLoader, RejectsWorldSizesThatDoNotDivideEight) {
  for (int w : {0, 3, 5, 6, 7, 16}) EXPECT_THROW(grad_accum_steps(w), std::invalid_argument) << w;
}

TEST(ValidationTokens, ConcatenatesAndTruncates) {
  TempDir dir;
  write_shard(dir.file("fineweb_val_000000.bin"), iota_tokens(30));
  write_shard(dir.file("fineweb_val_000001.bin"), iota_tokens(17, 30));
  auto v = load_validation(dir.path(), 10, 1024);
  // N = 47 -> floor(46/10)*10 + 1 = 41
  ASSERT_EQ(v.tokens.size(), 41u);
  EXPECT_EQ(v.tokens.front(), 0);
  EXPECT_EQ(v.tokens.back(), 40);
  EXPECT_TRUE(v.bytes.empty());
  EXPECT_THROW(load_validation(dir.path(), 100, 1024), std::runtime_error);
}

// The byte sidecars sit beside the val shards and match the glob
// fineweb_val_*.bin: they must never be read as tokens (that scored the byte
// counts as text), and are paired with their shards by number.
TEST(ValidationTokens, ByteSidecarsAreNotTokensAndArePairedWithTheirShards) {
  TempDir dir;
  write_shard(dir.file("fineweb_val_000000.bin"), iota_tokens(30));
  write_shard(dir.file("fineweb_val_000001.bin"), iota_tokens(17, 30));
  EXPECT_EQ(byte_sidecar_path(dir.file("fineweb_val_000001.bin")), dir.file("fineweb_val_bytes_000001.bin"));
  std::vector<std::uint16_t> b0(30, 3), b1(17, 5);
  b0[0] = 0;
  write_shard(dir.file("fineweb_val_bytes_000000.bin"), b0);
  EXPECT_EQ(shard_files(val_pattern(dir.path())).size(), 2u);
  // A partial set of sidecars is an error naming the shard without one.
  try {
    load_validation(dir.path(), 10, 1024);
    ADD_FAILURE() << "val shard 1 without a sidecar accepted";
  } catch (const ShardError& e) {
    EXPECT_NE(std::string(e.what()).find("fineweb_val_000001.bin' has no byte sidecar"), std::string::npos) << e.what();
  }
  write_shard(dir.file("fineweb_val_bytes_000001.bin"), b1);
  auto v = load_validation(dir.path(), 10, 1024);
  ASSERT_EQ(v.tokens.size(), 41u);
  EXPECT_EQ(v.tokens.back(), 40);
  ASSERT_EQ(v.bytes.size(), 41u);
  EXPECT_EQ(v.bytes[0], 0);
  EXPECT_EQ(v.bytes[29], 3);
  EXPECT_EQ(v.bytes[30], 5);
  // A sidecar whose length differs from its shard's names both files.
  write_shard(dir.file("fineweb_val_bytes_000001.bin"), std::vector<std::uint16_t>(16, 5));
  try {
    load_validation(dir.path(), 10, 1024);
    ADD_FAILURE() << "short sidecar accepted";
  } catch (const ShardError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("fineweb_val_bytes_000001.bin' has 16 entries but its shard '"), std::string::npos) << m;
    EXPECT_NE(m.find("fineweb_val_000001.bin' has 17 tokens"), std::string::npos) << m;
  }
  // A sidecar without its shard.
  write_shard(dir.file("fineweb_val_bytes_000001.bin"), b1);
  write_shard(dir.file("fineweb_val_bytes_000002.bin"), b1);
  EXPECT_THROW(load_validation(dir.path(), 10, 1024), ShardError);
}

// Token ids index the embedding and the byte tables: an id >= VOCAB_SIZE is an
// error naming the shard, the position and the id, when a shard is opened for
// training (TokenStream) or loaded for scoring (validation tokens).
TEST(Shard, TokenIdsAtOrAboveTheVocabularyAreRejected) {
  TempDir dir;
  write_shard(dir.file("s.bin"), {1, 2, 3, 1024, 5});
  Shard s(dir.file("s.bin"));
  EXPECT_NO_THROW(s.check_token_ids(1025));
  try {
    s.check_token_ids(1024);
    ADD_FAILURE() << "id 1024 accepted";
  } catch (const ShardError& e) {
    EXPECT_EQ(e.kind, ShardError::BadToken);
    EXPECT_NE(std::string(e.what()).find("s.bin': token 3 of 5 has id 1024, not below VOCAB_SIZE=1024"), std::string::npos)
        << e.what();
  }

  // Training: checked when each shard is opened, the first one at once.
  write_shard(dir.file("fineweb_train_000000.bin"), iota_tokens(10));
  write_shard(dir.file("fineweb_train_000001.bin"), {1, 2, 700});
  TokenStream stream(shard_files(train_pattern(dir.path())), 512);
  EXPECT_EQ(stream.take(10).size(), 10u);
  try {
    stream.take(1);
    ADD_FAILURE() << "id 700 accepted";
  } catch (const ShardError& e) {
    EXPECT_NE(std::string(e.what()).find("fineweb_train_000001.bin': token 2 of 3 has id 700"), std::string::npos) << e.what();
  }
  EXPECT_THROW(TokenStream({dir.file("fineweb_train_000001.bin")}, 512), ShardError);
  EXPECT_THROW(DistributedTokenLoader({dir.file("fineweb_train_000001.bin")}, 0, 1, 512), ShardError);
  EXPECT_NO_THROW(TokenStream({dir.file("fineweb_train_000001.bin")}, 701));

  // Validation: once, at load.
  write_shard(dir.file("fineweb_val_000000.bin"), iota_tokens(30));
  try {
    load_validation(dir.path(), 10, 20);
    ADD_FAILURE() << "ids up to 29 accepted under VOCAB_SIZE=20";
  } catch (const ShardError& e) {
    EXPECT_NE(std::string(e.what()).find("fineweb_val_000000.bin': token 20 of 30 has id 20, not below VOCAB_SIZE=20"),
              std::string::npos)
        << e.what();
  }
}
