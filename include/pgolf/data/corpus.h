// Text corpora: documents read from JSONL or plain-text files, and turned into
// token shards (`pgolf shard`) in the official format of docs/MODEL.md ("Data").
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "pgolf/data/tokenizer.h"

namespace pgolf {

// Input files are read in the order given.
//  - JSONL (name ends in .jsonl or .json, or format "jsonl"): one JSON object
//    per line; the document is its "text" field.
//  - plain text: the whole file is one document, or, with a separator, the
//    file is split at every line equal to it (e.g. "%" for fortune files).
// Documents that are empty or only white space are skipped.
struct CorpusOptions {
  std::vector<std::string> inputs;
  std::string format = "auto";  // auto, jsonl or text
  std::string separator;        // text only; empty = one document per file
  std::int64_t max_docs = 0;    // 0 = all
};

class DocumentReader {
 public:
  explicit DocumentReader(CorpusOptions opts);
  // Reads the next document into `doc`; false at the end of the corpus.
  bool next(std::string& doc);
  // "file:line" of the last line read, for messages.
  std::string where() const;

 private:
  bool open_next_file();
  bool next_jsonl(std::string& doc);
  bool next_text(std::string& doc);

  CorpusOptions opts_;
  std::size_t file_index_ = 0;
  std::ifstream in_;
  bool jsonl_ = false;
  std::int64_t line_ = 0, docs_ = 0;
};

struct ShardOptions {
  std::string output_dir;
  std::int64_t val_docs = 50000;          // the first N documents form the val split
  std::int64_t shard_tokens = 100000000;  // tokens per shard (the last may hold fewer)
  bool force = false;                     // replace an existing output folder
  std::uint64_t shuffle_seed = 0;         // 0 = keep input order; else shuffle documents first (in memory)
  bool byte_sidecars = false;             // also write fineweb_val_bytes_NNNNNN.bin (data.h)
  bool caseops = false;                   // tokenise caseops_encode(doc); implies byte_sidecars
};

// The bytes of a document each of its tokens stands for, from the tokens'
// span starts: token k covers [b_k, b_{k+1}), the first from 0 and the last
// to the end, so the counts sum to `text_bytes` (white space the normaliser
// dropped counts with its neighbour; a start that goes backwards counts 0).
std::vector<std::uint16_t> token_byte_counts(const std::vector<std::uint32_t>& begins, std::size_t text_bytes);

struct SplitStats {
  std::int64_t docs = 0, bytes = 0, tokens = 0, shards = 0;
};
struct ShardStats {
  SplitStats train, val;
};

// Tokenises every document, prefixes BOS, and writes fineweb_val_NNNNNN.bin and
// fineweb_train_NNNNNN.bin (and, if asked, the val split's byte sidecars, BOS
// counting 0). With CaseOps the tokenizer must hold the marker pieces, and the
// sidecars count the original text's bytes, markers standing for none. Beside
// them goes the tokenizer's record (tokenizer_check.h). The shards are built in a temporary folder that is
// renamed to `output_dir` only when all of them are written.
ShardStats make_shards(DocumentReader& docs, const Tokenizer& tok, const ShardOptions& opts);

std::string format_stats(const ShardStats& s);

}  // namespace pgolf
