// Token data (docs/MODEL.md ("Data")): the official shard format, the training token stream
// with its per-rank slicing, and the validation tokens.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "pgolf/core/io.h"

namespace pgolf {

constexpr std::int32_t kShardMagic = 20240520;
constexpr std::int32_t kShardVersion = 1;
constexpr std::size_t kShardHeaderInts = 256;
constexpr std::size_t kShardHeaderBytes = kShardHeaderInts * sizeof(std::int32_t);
constexpr std::uint16_t kBosId = 1;

// Every way a shard can be unusable; the message names the file and the fix.
struct ShardError : std::runtime_error {
  enum Kind { NoFiles, TruncatedHeader, BadMagic, BadVersion, TruncatedBody, SizeMismatch, BadToken };
  ShardError(Kind kind, const std::string& msg) : std::runtime_error(msg), kind(kind) {}
  Kind kind;
};

// A validated shard, read into memory whole: header checked, body viewed in place.
class Shard {
 public:
  explicit Shard(const std::string& path);
  const std::uint16_t* tokens() const;
  std::size_t num_tokens() const { return num_tokens_; }
  const std::string& path() const { return file_.path(); }
  // Every token id must be below vocab_size (one vectorised pass over the
  // body, once per opened shard): the ids index the model's embedding and the
  // byte tables. ShardError::BadToken names the file, the first bad position and id.
  void check_token_ids(std::int64_t vocab_size) const;

 private:
  ReadOnlyFile file_;
  std::size_t num_tokens_ = 0;
};

// Writes one shard atomically in the official format.
void write_shard(const std::string& path, const std::vector<std::uint16_t>& tokens);

// Sorted paths matching `pattern`; an empty match is ShardError::NoFiles.
std::vector<std::string> shard_files(const std::string& pattern);
// DATA_PATH/fineweb_train_[0-9]*.bin; while a TrainingDataBan exists it throws instead.
std::string train_pattern(const std::string& data_path);

// The challenge's evaluation sees no training data (docs/RULES.md): while one
// of these exists in the process (the final scoring of `pgolf train`, all of
// `pgolf eval`), asking for the training shards is an error naming `during`.
class TrainingDataBan {
 public:
  explicit TrainingDataBan(std::string during);
  ~TrainingDataBan();
  TrainingDataBan(const TrainingDataBan&) = delete;
  TrainingDataBan& operator=(const TrainingDataBan&) = delete;

 private:
  std::string previous_;
};
std::string val_pattern(const std::string& data_path);    // DATA_PATH/fineweb_val_[0-9]*.bin: never the sidecars
// The byte sidecar of a validation shard, beside it: fineweb_val_NNNNNN.bin ->
// fineweb_val_bytes_NNNNNN.bin. Same format as a shard; one uint16 per token:
// the UTF-8 bytes of the original text that the token stands for (0 for BOS).
std::string byte_sidecar_path(const std::string& val_shard);

// The shared training stream: shards in sorted order, wrapping around at the
// end. Shards are opened lazily, one at a time, and their token ids checked
// against vocab_size when opened (0: not checked).
class TokenStream {
 public:
  struct Position {
    std::size_t file = 0;
    std::size_t offset = 0;
    bool operator==(const Position& o) const { return file == o.file && offset == o.offset; }
  };

  // Checks every shard's header and size at once (a damaged shard far down
  // the list is an error now, not hours into a run); the token ids of each
  // shard are checked when the stream reaches it.
  TokenStream(std::vector<std::string> files, std::int64_t vocab_size);
  // Tokens in all shards: one epoch of the stream.
  std::size_t total_tokens() const { return total_tokens_; }
  // The next n tokens of the stream.
  std::vector<std::uint16_t> take(std::size_t n);
  Position position() const { return pos_; }
  void seek(Position p);  // restores a saved position (e.g. after warm-up); one outside the stream is an error

 private:
  void open(std::size_t file);
  Shard open_checked(std::size_t file) const;
  std::vector<std::string> files_;
  std::int64_t vocab_size_;
  std::size_t total_tokens_ = 0;
  Shard current_;
  Position pos_;
};

// One micro-batch of one rank: `rows` sequences of `seq_len` tokens.
struct Batch {
  std::vector<std::int64_t> inputs, targets;
  std::int64_t rows = 0, seq_len = 0;
};

// Batch arithmetic of docs/MODEL.md ("Data"): each micro-step takes (local+1)*world_size
// tokens from the shared stream, local = global_tokens / (world_size*grad_accum);
// rank r uses slice [r*(local+1), (r+1)*(local+1)); inputs are its first
// `local` tokens, targets the same shifted by one.
class DistributedTokenLoader {
 public:
  // vocab_size: as TokenStream's. (0 skips the check; train.cpp must pass VOCAB_SIZE.)
  DistributedTokenLoader(std::vector<std::string> files, int rank, int world_size, std::int64_t vocab_size = 0);
  Batch next_batch(std::int64_t global_tokens, std::int64_t seq_len, std::int64_t grad_accum);
  TokenStream& stream() { return stream_; }
  const TokenStream& stream() const { return stream_; }

 private:
  TokenStream stream_;
  int rank_, world_size_;
};

// grad_accum = 8 / world_size; world size must divide 8.
std::int64_t grad_accum_steps(int world_size);

// The validation split of DATA_PATH.
struct ValidationSplit {
  std::vector<std::uint16_t> tokens;
  std::vector<std::uint16_t> bytes;  // the sidecars' counts, aligned with tokens; empty: the folder has none
};

// All val shards concatenated, truncated to floor((N-1)/seq_len)*seq_len + 1;
// every token id is checked against vocab_size once, here. When the folder
// holds byte sidecars, every val shard must have one of its length (an error
// names both files otherwise) and they are concatenated and truncated alike.
ValidationSplit load_validation(const std::string& data_path, std::int64_t seq_len, std::int64_t vocab_size);

}  // namespace pgolf
