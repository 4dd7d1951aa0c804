#include "pgolf/data/tokenizer_check.h"

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "pgolf/core/io.h"
#include "pgolf/data/data.h"
#include "pgolf/data/tokenizer.h"

namespace pgolf {
namespace {

// How a tokenizer file is recognised: its size and CRC-32.
struct TokenizerHash {
  std::uintmax_t bytes = 0;
  std::uint32_t crc32 = 0;
  bool operator==(const TokenizerHash& o) const { return bytes == o.bytes && crc32 == o.crc32; }
};

TokenizerHash hash_of(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw std::runtime_error("cannot load tokenizer '" + path + "': not a file (set TOKENIZER_PATH)");
  return {std::filesystem::file_size(path), file_crc32(path)};
}

// The CRC-32 as 8 hex digits, as the record holds it.
std::string crc_hex(std::uint32_t crc) {
  char text[16];
  std::snprintf(text, sizeof text, "%08x", crc);
  return text;
}

std::string format_hash(const TokenizerHash& h) { return "bytes:" + std::to_string(h.bytes) + " crc32:" + crc_hex(h.crc32); }

// The end of both failures: what to do about them.
const char* const kFix =
    " Set TOKENIZER_PATH to the tokenizer that made the shards (or make the shards again with this one: `pgolf "
    "shard --tokenizer ...`); for a deliberate experiment with another tokenizer, set TOKENIZER_CHECK=0 to skip "
    "this check";

// What a record names: the tokenizer file's name (for messages) and its hash.
struct Record {
  std::string tokenizer;
  TokenizerHash hash;
};

Record read_record(const std::string& path) {
  std::map<std::string, std::string> values;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    const std::size_t eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  Record r;
  try {
    r.tokenizer = values.at("tokenizer");
    r.hash.bytes = std::stoull(values.at("bytes"));
    r.hash.crc32 = static_cast<std::uint32_t>(std::stoul(values.at("crc32"), nullptr, 16));
  } catch (const std::exception&) {
    throw std::runtime_error("tokenizer record '" + path +
                             "' is damaged: it needs tokenizer=, bytes= and crc32= lines (remove it, or make the shards "
                             "again with `pgolf shard`)");
  }
  return r;
}

// 1. The record, when the folder holds one.
void check_record(const std::string& tokenizer_path, const std::string& data_path) {
  const std::string path = tokenizer_record_path(data_path);
  if (!std::filesystem::exists(path)) return;  // older data: the round trip alone decides
  const Record r = read_record(path);
  const TokenizerHash mine = hash_of(tokenizer_path);
  if (mine == r.hash) return;
  throw std::runtime_error("TOKENIZER_PATH '" + tokenizer_path + "' (" + format_hash(mine) +
                           ") is not the tokenizer that made the shards in DATA_PATH '" + data_path + "': their record '" +
                           path + "' names '" + r.tokenizer + "' (" + format_hash(r.hash) +
                           "). val_bpb counts bytes through the tokenizer, so the score would be wrong." + kFix);
}

// A validation document: the ids after a BOS up to the next BOS or the end of
// the split, its number among the documents and where its first id is.
struct Document {
  std::size_t number = 0, start = 0;
  std::vector<int> ids;
};

constexpr std::size_t kSampleDocs = 64;
constexpr std::size_t kSampleTokens = 64 << 10;  // decoding and encoding this many takes well under a second
constexpr std::size_t kLongDoc = 16 << 10;       // longer documents are passed over: one would take the whole sample

// The first kSampleDocs documents of the val split (or those within its first
// kSampleTokens sampled ids), in order; ids before the first BOS belong to no
// whole document and are not sampled.
std::vector<Document> sample_documents(const std::string& data_path) {
  std::vector<Document> docs;
  std::size_t sampled = 0, position = 0, number = 0;
  Document doc;
  bool open = false;  // ids go into `doc`: a BOS came before them
  auto close = [&] {
    if (open && doc.ids.size() <= kLongDoc) {
      sampled += doc.ids.size();
      docs.push_back(std::move(doc));
    }
    doc = {};
  };
  for (const std::string& file : shard_files(val_pattern(data_path))) {
    const Shard shard(file);
    for (std::size_t i = 0; i < shard.num_tokens(); ++i, ++position) {
      const std::uint16_t id = shard.tokens()[i];
      if (id != kBosId) {
        if (open && doc.ids.size() <= kLongDoc) doc.ids.push_back(id);
        continue;
      }
      close();
      if (docs.size() == kSampleDocs || sampled >= kSampleTokens) return docs;
      open = true;
      doc.number = number++;
      doc.start = position + 1;
    }
  }
  close();
  return docs;
}

// One document's round trip: the ids come back, or not (where they first
// differ: the position and both ids as text, "none" past the end of either),
// and if not, whether the decoded text changed again (below).
struct RoundTrip {
  bool same = true, text_changed = false;
  std::size_t position = 0;
  std::string shards, tokenizer;
};

RoundTrip round_trip(const Tokenizer& tok, const Document& doc) {
  // Ids past the tokenizer's pieces would not decode at all.
  for (std::size_t i = 0; i < doc.ids.size(); ++i)
    if (doc.ids[i] >= tok.vocab_size())
      return {false, false, i, std::to_string(doc.ids[i]), "none (it has " + std::to_string(tok.vocab_size()) + " pieces)"};
  const std::string text = tok.decode(doc.ids);
  const std::vector<int> again = tok.encode(text);
  if (again == doc.ids) return {};
  const auto id_at = [](const std::vector<int>& ids, std::size_t i) {
    return i < ids.size() ? std::to_string(ids[i]) : std::string("none");
  };
  std::size_t i = 0;
  while (i < doc.ids.size() && i < again.size() && doc.ids[i] == again[i]) ++i;
  return {false, tok.decode(again) != text, i, id_at(doc.ids, i), id_at(again, i)};
}

// 2. The round trip of the sampled documents. The shards hold encode(text);
// decode() gives back the normalised text (NFKC, white space collapsed),
// which the normaliser leaves as it is, so the right tokenizer encodes it to
// the same ids. Another tokenizer decodes the ids to other text, which it
// encodes to other ids (1,338 of the demo corpus's 1,500 val documents with
// a tokenizer of the same size trained on its text spelt backwards).
//
// One exception: the normaliser works in one pass, so where it deletes a
// control character (U+0001, DEL) between a letter and a combining mark, or
// between two Hangul jamo, only a second pass composes the pair.
// The decoded text then changes again, and even the right tokenizer gives
// other ids (14 of 3,000 documents of random Unicode; none of the demo
// corpus). Such documents cannot decide, so up to a quarter of the sample may
// do that; another tokenizer's pieces often decode to text that changes again
// too (double spaces), but then most documents fail or more than a quarter
// change, so that exception cannot hide it.
void check_round_trip(const std::string& tokenizer_path, const std::string& data_path) {
  const std::vector<Document> docs = sample_documents(data_path);
  const Tokenizer tok(tokenizer_path);
  std::size_t not_back = 0, text_changed = 0;
  const Document* first = nullptr;
  RoundTrip diff;
  for (const Document& doc : docs) {
    const RoundTrip r = round_trip(tok, doc);
    if (r.same) continue;
    text_changed += r.text_changed;
    if (not_back++ > 0) continue;
    first = &doc;
    diff = r;
  }
  if (not_back == text_changed && text_changed * 4 <= docs.size()) return;
  throw std::runtime_error(
      "TOKENIZER_PATH '" + tokenizer_path + "' did not make the shards in DATA_PATH '" + data_path + "': " +
      std::to_string(not_back) + " of the " + std::to_string(docs.size()) +
      " validation documents checked do not come back as the same ids when decoded and encoded again" +
      (text_changed == 0 ? std::string()
                         : " (" + std::to_string(text_changed) +
                               " of them because the normaliser changes their decoded text again, which up to a "
                               "quarter of the documents may do)") +
      "; the first, document " + std::to_string(first->number) +
      " (from val token " + std::to_string(first->start) + "), differs at its token " + std::to_string(diff.position) +
      ": id " + diff.shards + " in the shards, " + diff.tokenizer +
      " from the tokenizer. val_bpb counts bytes through the tokenizer, so the score would be wrong." + kFix);
}

}  // namespace

std::string tokenizer_record_path(const std::string& data_path) { return data_path + "/tokenizer_record.txt"; }

void write_tokenizer_record(const std::string& dir, const std::string& tokenizer_path) {
  const TokenizerHash h = hash_of(tokenizer_path);
  write_file_atomic(tokenizer_record_path(dir),
                    "# The tokenizer that made the shards in this folder. pgolf train, eval and data refuse a\n"
                    "# TOKENIZER_PATH of another size or CRC-32 (TOKENIZER_CHECK=0 skips the check).\n"
                    "tokenizer=" + std::filesystem::path(tokenizer_path).filename().string() + "\n" +
                    "bytes=" + std::to_string(h.bytes) + "\ncrc32=" + crc_hex(h.crc32) + "\n");
}

void check_tokenizer_made_shards(const std::string& tokenizer_path, const std::string& data_path) {
  check_record(tokenizer_path, data_path);
  check_round_trip(tokenizer_path, data_path);
}

std::string check_tokenizer_unless_disabled(const std::string& tokenizer_path, const std::string& data_path, bool enabled) {
  if (!enabled)
    return "tokenizer_check: skipped (TOKENIZER_CHECK=0): TOKENIZER_PATH '" + tokenizer_path +
           "' is not compared with the shards in DATA_PATH '" + data_path + "'";
  check_tokenizer_made_shards(tokenizer_path, data_path);
  return "";
}

}  // namespace pgolf
