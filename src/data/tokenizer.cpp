#include "pgolf/data/tokenizer.h"

#include <sentencepiece_processor.h>

#include <stdexcept>

#include "pgolf/core/io.h"

namespace pgolf {

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

Tokenizer::Tokenizer(const std::string& model_path) : impl_(std::make_unique<Impl>()), path_(model_path) {
  auto status = impl_->sp.Load(model_path);
  if (!status.ok())
    throw std::runtime_error("cannot load tokenizer '" + model_path + "': " + status.ToString() +
                             " (set TOKENIZER_PATH, or train one with `pgolf tokenizer`)");
}

Tokenizer::~Tokenizer() = default;

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto status = impl_->sp.Encode(absl::string_view(text.data(), text.size()), &ids);
  if (!status.ok()) throw std::runtime_error("tokenizer '" + path_ + "' failed to encode: " + status.ToString());
  return ids;
}

std::vector<int> Tokenizer::encode(std::string_view text, std::vector<std::uint32_t>& begins) const {
  sentencepiece::ImmutableSentencePieceText spt;
  auto status = impl_->sp.Encode(absl::string_view(text.data(), text.size()), spt.mutable_proto());
  if (!status.ok()) throw std::runtime_error("tokenizer '" + path_ + "' failed to encode: " + status.ToString());
  std::vector<int> ids;
  begins.clear();
  for (const auto& p : spt.pieces()) {
    ids.push_back(static_cast<int>(p.id()));
    begins.push_back(p.begin());
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const { return impl_->sp.DecodeIds(ids); }
int Tokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }
std::string Tokenizer::piece(int id) const { return impl_->sp.IdToPiece(id); }
bool Tokenizer::is_control(int id) const { return impl_->sp.IsControl(id); }
bool Tokenizer::is_unknown(int id) const { return impl_->sp.IsUnknown(id); }
bool Tokenizer::is_unused(int id) const { return impl_->sp.IsUnused(id); }
bool Tokenizer::is_byte(int id) const { return impl_->sp.IsByte(id); }
bool Tokenizer::has_piece(const std::string& piece) const { return !impl_->sp.IsUnknown(impl_->sp.PieceToId(piece)); }

ByteLuts build_byte_luts(const Tokenizer& tok, int vocab_size) {
  const int n = tok.vocab_size();
  if (n != vocab_size)
    throw std::runtime_error("tokenizer '" + tok.path() + "' has " + std::to_string(n) + " pieces but VOCAB_SIZE=" +
                             std::to_string(vocab_size) + " (set VOCAB_SIZE=" + std::to_string(n) +
                             " or use the matching TOKENIZER_PATH)");
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's word-boundary mark
  ByteLuts l;
  l.base_bytes.assign(n, 0);
  l.has_leading_space.assign(n, false);
  l.is_boundary.assign(n, true);
  for (int id = 0; id < n; ++id) {
    if (tok.is_control(id) || tok.is_unknown(id) || tok.is_unused(id)) continue;
    l.is_boundary[id] = false;
    if (tok.is_byte(id)) {
      l.base_bytes[id] = 1;
      continue;
    }
    std::string piece = tok.piece(id);
    if (piece.compare(0, kSpace.size(), kSpace) == 0) {
      l.has_leading_space[id] = true;
      piece.erase(0, kSpace.size());
    }
    l.base_bytes[id] = static_cast<std::int16_t>(piece.size());
  }
  return l;
}

}  // namespace pgolf
