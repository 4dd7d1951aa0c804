// Training a SentencePiece tokenizer (`pgolf tokenizer`), apart from the
// tokenizer itself (tokenizer.h) because only the full build has it: the
// counted code (README "Code bytes") encodes and decodes but never trains.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace pgolf {

// Yields documents one at a time; returns false when there are no more.
using DocumentSource = std::function<bool(std::string& doc)>;

// Trains the SentencePiece BPE model of docs/MODEL.md ("Data") (byte fallback, split digits,
// nmt_nfkc, no dummy prefix, pad/bos/eos/unk = 0/1/2/3) on the documents and
// writes it atomically to `output_path`. `reserved_pieces` (e.g. the CaseOps
// markers) become pieces of their own, never merged or split.
void train_tokenizer(const DocumentSource& docs, int vocab_size, const std::string& output_path, int num_threads,
                     const std::vector<std::string>& reserved_pieces = {});

}  // namespace pgolf
