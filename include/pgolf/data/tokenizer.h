// Tokenizer (docs/MODEL.md ("Data")) and the bits-per-byte lookup tables (docs/MODEL.md ("The score: bits per byte")).
// SentencePiece stays behind this interface; nothing else includes it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pgolf {

class Tokenizer {
 public:
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int> encode(std::string_view text) const;
  // Also the byte offset in `text` (before normalisation) where each token's
  // span begins, as SentencePiece aligns them.
  std::vector<int> encode(std::string_view text, std::vector<std::uint32_t>& begins) const;
  std::string decode(const std::vector<int>& ids) const;
  int vocab_size() const;
  std::string piece(int id) const;
  bool is_control(int id) const;
  bool is_unknown(int id) const;
  bool is_unused(int id) const;
  bool is_byte(int id) const;
  bool has_piece(const std::string& piece) const;
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

// docs/MODEL.md ("The score: bits per byte") lookup tables over token ids.
struct ByteLuts {
  std::vector<std::int16_t> base_bytes;  // UTF-8 bytes of the piece without a leading U+2581
  std::vector<bool> has_leading_space;   // piece starts with U+2581
  std::vector<bool> is_boundary;         // control, unknown or unused

  // bytes = base_bytes[t] + (has_leading_space[t] && !is_boundary[p])
  std::int64_t token_bytes(int prev, int target) const {
    return base_bytes[target] + (has_leading_space[target] && !is_boundary[prev] ? 1 : 0);
  }
};

// Builds the tables; throws when the tokenizer's vocabulary size differs from
// `vocab_size` (the model's VOCAB_SIZE).
ByteLuts build_byte_luts(const Tokenizer& tok, int vocab_size);

}  // namespace pgolf
