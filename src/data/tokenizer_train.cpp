#include "pgolf/data/tokenizer_train.h"

#include <sentencepiece_trainer.h>

#include <algorithm>
#include <stdexcept>

#include "pgolf/core/io.h"

namespace pgolf {

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

}  // namespace pgolf
