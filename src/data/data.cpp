#include "pgolf/data/data.h"

#include <algorithm>
#include <cstring>

namespace pgolf {

namespace {
[[noreturn]] void corrupt(ShardError::Kind kind, const std::string& path, const std::string& what) {
  throw ShardError(kind, "corrupt shard '" + path + "': " + what + " (re-create it with `pgolf shard` or download it again)");
}
}  // namespace

Shard::Shard(const std::string& path) : file_(path) {
  const std::size_t size = file_.size();
  auto fail = [&](ShardError::Kind kind, const std::string& what) { corrupt(kind, path, what); };
  if (size < kShardHeaderBytes)
    fail(ShardError::TruncatedHeader, "file has " + std::to_string(size) + " bytes, less than the " +
                                          std::to_string(kShardHeaderBytes) + "-byte header");
  std::int32_t header[3];
  std::memcpy(header, file_.data(), sizeof header);
  if (header[0] != kShardMagic)
    fail(ShardError::BadMagic, "bad magic " + std::to_string(header[0]) + ", expected " + std::to_string(kShardMagic));
  if (header[1] != kShardVersion)
    fail(ShardError::BadVersion, "unsupported version " + std::to_string(header[1]) + ", expected " +
                                     std::to_string(kShardVersion));
  if (header[2] < 0) fail(ShardError::SizeMismatch, "negative token count " + std::to_string(header[2]));
  num_tokens_ = static_cast<std::size_t>(header[2]);
  const std::size_t expected = kShardHeaderBytes + 2 * num_tokens_;
  if (size < expected)
    fail(ShardError::TruncatedBody, "truncated body: header says " + std::to_string(num_tokens_) + " tokens (" +
                                        std::to_string(expected) + " bytes) but the file has " + std::to_string(size));
  if (size > expected)
    fail(ShardError::SizeMismatch, "size mismatch: header says " + std::to_string(num_tokens_) + " tokens (" +
                                       std::to_string(expected) + " bytes) but the file has " + std::to_string(size));
}

// The body starts 1024 bytes into a page-aligned map, so it is 2-byte aligned.
const std::uint16_t* Shard::tokens() const {
  return reinterpret_cast<const std::uint16_t*>(file_.data() + kShardHeaderBytes);
}

void Shard::check_token_ids(std::int64_t vocab_size) const {
  const std::uint16_t* t = tokens();
  std::uint16_t max_id = 0;
  for (std::size_t i = 0; i < num_tokens_; ++i) max_id = std::max(max_id, t[i]);  // vectorised by the compiler
  if (max_id < vocab_size) return;
  const std::size_t i = std::find_if(t, t + num_tokens_, [&](std::uint16_t id) { return id >= vocab_size; }) - t;
  corrupt(ShardError::BadToken, path(), "token " + std::to_string(i) + " of " + std::to_string(num_tokens_) + " has id " +
                                            std::to_string(t[i]) + ", not below VOCAB_SIZE=" + std::to_string(vocab_size) +
                                            " (made with another tokenizer, or damaged)");
}

void write_shard(const std::string& path, const std::vector<std::uint16_t>& tokens) {
  if (tokens.size() > static_cast<std::size_t>(INT32_MAX))
    throw std::runtime_error("cannot write shard '" + path + "': more than 2^31-1 tokens");
  std::int32_t header[kShardHeaderInts] = {};
  header[0] = kShardMagic;
  header[1] = kShardVersion;
  header[2] = static_cast<std::int32_t>(tokens.size());
  AtomicFile f(path);
  f.write(header, sizeof header);
  f.write(tokens.data(), tokens.size() * sizeof(std::uint16_t));
  f.commit();
}

std::vector<std::string> shard_files(const std::string& pattern) {
  auto files = glob_sorted(pattern);
  if (files.empty())
    throw ShardError(ShardError::NoFiles, "no shard files match '" + pattern +
                                              "' (set DATA_PATH to the folder holding the .bin shards, or create "
                                              "them with `pgolf shard`)");
  return files;
}

namespace {
std::string banned_during;  // what holds the TrainingDataBan; empty: none
}  // namespace

TrainingDataBan::TrainingDataBan(std::string during) : previous_(std::move(banned_during)) { banned_during = std::move(during); }
TrainingDataBan::~TrainingDataBan() { banned_during = std::move(previous_); }

std::string train_pattern(const std::string& data_path) {
  if (!banned_during.empty())
    throw std::logic_error(banned_during + " asked for the training shards under '" + data_path +
                           "': the challenge's evaluation must not read training data (docs/RULES.md)");
  return data_path + "/fineweb_train_[0-9]*.bin";
}
std::string val_pattern(const std::string& data_path) { return data_path + "/fineweb_val_[0-9]*.bin"; }

std::string byte_sidecar_path(const std::string& val_shard) {
  const std::string stem = "fineweb_val_";
  const std::size_t at = val_shard.rfind(stem);
  if (at == std::string::npos) throw std::invalid_argument("'" + val_shard + "' is not named fineweb_val_NNNNNN.bin");
  return val_shard.substr(0, at) + "fineweb_val_bytes_" + val_shard.substr(at + stem.size());
}

namespace {
// Every shard opened once: its header and size are checked (Shard's constructor).
std::size_t tokens_in(const std::vector<std::string>& files) {
  std::size_t total = 0;
  for (const auto& f : files) total += Shard(f).num_tokens();
  return total;
}
}  // namespace

TokenStream::TokenStream(std::vector<std::string> files, std::int64_t vocab_size)
    : files_(std::move(files)), vocab_size_(vocab_size), total_tokens_(tokens_in(files_)), current_(open_checked(0)) {}

Shard TokenStream::open_checked(std::size_t file) const {
  if (files_.empty()) throw ShardError(ShardError::NoFiles, "the training stream needs at least one shard");
  Shard s(files_[file]);
  if (vocab_size_ > 0) s.check_token_ids(vocab_size_);
  return s;
}

void TokenStream::open(std::size_t file) {
  if (file != pos_.file) current_ = open_checked(file);
  pos_ = {file, 0};
}

void TokenStream::seek(Position p) {
  if (p.file >= files_.size())
    throw std::out_of_range("stream position in shard " + std::to_string(p.file) + ", but the stream has " +
                            std::to_string(files_.size()) + " shards");
  open(p.file);
  if (p.offset > current_.num_tokens())
    throw std::out_of_range("stream position at token " + std::to_string(p.offset) + " of '" + files_[p.file] +
                            "', which has " + std::to_string(current_.num_tokens()));
  pos_.offset = p.offset;
}

std::vector<std::uint16_t> TokenStream::take(std::size_t n) {
  std::vector<std::uint16_t> out;
  out.reserve(n);
  std::size_t empty_files = 0;
  while (out.size() < n) {
    if (pos_.offset >= current_.num_tokens()) {
      if (++empty_files > files_.size()) throw std::runtime_error("training shards hold no tokens");
      open((pos_.file + 1) % files_.size());
      continue;
    }
    empty_files = 0;
    std::size_t k = std::min(n - out.size(), current_.num_tokens() - pos_.offset);
    out.insert(out.end(), current_.tokens() + pos_.offset, current_.tokens() + pos_.offset + k);
    pos_.offset += k;
  }
  return out;
}

DistributedTokenLoader::DistributedTokenLoader(std::vector<std::string> files, int rank, int world_size,
                                               std::int64_t vocab_size)
    : stream_(std::move(files), vocab_size), rank_(rank), world_size_(world_size) {}

Batch DistributedTokenLoader::next_batch(std::int64_t global_tokens, std::int64_t seq_len, std::int64_t grad_accum) {
  const std::int64_t local = global_tokens / (world_size_ * grad_accum);
  if (local <= 0 || local % seq_len != 0)
    throw std::invalid_argument("per-rank micro-batch of " + std::to_string(local) +
                                " tokens is not a positive multiple of TRAIN_SEQ_LEN=" + std::to_string(seq_len));
  const std::int64_t span = local + 1;
  std::vector<std::uint16_t> chunk = stream_.take(static_cast<std::size_t>(span * world_size_));
  const std::uint16_t* mine = chunk.data() + rank_ * span;
  Batch b;
  b.rows = local / seq_len;
  b.seq_len = seq_len;
  b.inputs.assign(mine, mine + local);
  b.targets.assign(mine + 1, mine + span);
  return b;
}

std::int64_t grad_accum_steps(int world_size) {
  if (world_size <= 0 || 8 % world_size != 0)
    throw std::invalid_argument("world size " + std::to_string(world_size) +
                                " does not divide 8 (grad_accum = 8 / world_size); use 1, 2, 4 or 8 processes");
  return 8 / world_size;
}

namespace {
// The sidecar of each val shard, or none at all: a partial set is an error, as
// is a sidecar without its shard.
std::vector<std::string> byte_sidecars(const std::string& data_path, const std::vector<std::string>& shards) {
  const std::vector<std::string> found = glob_sorted(data_path + "/fineweb_val_bytes_[0-9]*.bin");
  if (found.empty()) return {};
  std::vector<std::string> sidecars;
  for (const auto& shard : shards) {
    sidecars.push_back(byte_sidecar_path(shard));
    if (!std::binary_search(found.begin(), found.end(), sidecars.back()))
      throw ShardError(ShardError::NoFiles, "validation shard '" + shard + "' has no byte sidecar '" + sidecars.back() +
                                                "', but the folder holds " + std::to_string(found.size()) +
                                                " sidecars: every val shard needs one, or none may be there");
  }
  for (const auto& f : found)
    if (!std::binary_search(sidecars.begin(), sidecars.end(), f))
      throw ShardError(ShardError::NoFiles, "byte sidecar '" + f +
                                                "' has no validation shard of its number beside it (remove it, or "
                                                "write shards and sidecars again with `pgolf shard --byte-sidecars`)");
  return sidecars;
}
}  // namespace

ValidationSplit load_validation(const std::string& data_path, std::int64_t seq_len, std::int64_t vocab_size) {
  const std::vector<std::string> shards = shard_files(val_pattern(data_path));
  const std::vector<std::string> sidecars = byte_sidecars(data_path, shards);
  ValidationSplit split;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    Shard s(shards[i]);
    s.check_token_ids(vocab_size);
    split.tokens.insert(split.tokens.end(), s.tokens(), s.tokens() + s.num_tokens());
    if (sidecars.empty()) continue;
    Shard b(sidecars[i]);
    if (b.num_tokens() != s.num_tokens())
      throw ShardError(ShardError::SizeMismatch, "byte sidecar '" + sidecars[i] + "' has " + std::to_string(b.num_tokens()) +
                                                     " entries but its shard '" + shards[i] + "' has " +
                                                     std::to_string(s.num_tokens()) +
                                                     " tokens (write both again with `pgolf shard --byte-sidecars`)");
    split.bytes.insert(split.bytes.end(), b.tokens(), b.tokens() + b.num_tokens());
  }
  const std::size_t L = static_cast<std::size_t>(seq_len);
  if (split.tokens.size() < L + 1)
    throw std::runtime_error("validation split '" + val_pattern(data_path) + "' has " + std::to_string(split.tokens.size()) +
                             " tokens, fewer than one sequence of " + std::to_string(seq_len) + " plus one");
  split.tokens.resize((split.tokens.size() - 1) / L * L + 1);
  if (!split.bytes.empty()) split.bytes.resize(split.tokens.size());
  return split;
}

}  // namespace pgolf
