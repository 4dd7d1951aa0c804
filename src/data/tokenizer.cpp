#include "pgolf/data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

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

namespace {

class DocumentIterator : public sentencepiece::SentenceIterator {
 public:
  explicit DocumentIterator(const DocumentSource& docs) : docs_(docs) { Next(); }
  bool done() const override { return done_; }
  void Next() override { done_ = !docs_(doc_); }
  const std::string& value() const override { return doc_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const DocumentSource& docs_;
  std::string doc_;
  bool done_ = false;
};

}  // namespace

void train_tokenizer(const DocumentSource& docs, int vocab_size, const std::string& output_path, int num_threads,
                     const std::vector<std::string>& reserved_pieces) {
  // docs/MODEL.md ("Data") settings. Each document is one training "sentence"; long ones are kept.
  std::string args = "--model_type=bpe --vocab_size=" + std::to_string(vocab_size) +
                           " --character_coverage=0.999 --byte_fallback=true --split_digits=true"
                           " --normalization_rule_name=nmt_nfkc --add_dummy_prefix=false"
                           " --pad_id=0 --bos_id=1 --eos_id=2 --unk_id=3 --hard_vocab_limit=false"
                           " --max_sentence_length=16384 --num_threads=" +
                           std::to_string(std::max(1, num_threads));
  for (std::size_t i = 0; i < reserved_pieces.size(); ++i)
    args += (i == 0 ? " --user_defined_symbols=" : ",") + reserved_pieces[i];
  DocumentIterator it(docs);
  std::string model;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!status.ok()) throw std::runtime_error("tokenizer training failed: " + status.ToString());
  write_file_atomic(output_path, model);
}

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
