// Shard tests: a split read back from its shards, the stream expected from documents.
#pragma once
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <numeric>
#include "helpers.h"
#include "pgolf/config/config.h"
#include "pgolf/data/corpus.h"
#include "pgolf/data/data.h"
#include "pgolf/eval/eval.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

namespace pgolf::test {

inline std::vector<std::uint16_t> read_split(const std::string& dir, const std::string& split, std::size_t* shards) {
  std::vector<std::uint16_t> all;
  auto files = shard_files(dir + "/fineweb_" + split + "_[0-9]*.bin");
  *shards = files.size();
  for (const auto& f : files) {
    Shard s(f);
    all.insert(all.end(), s.tokens(), s.tokens() + s.num_tokens());
  }
  return all;
}

// BOS + tokens of each document, concatenated.
inline std::vector<std::uint16_t> expected_stream(const std::vector<std::string>& docs, std::size_t begin, std::size_t end) {
  std::vector<std::uint16_t> out;
  for (std::size_t i = begin; i < end; ++i) {
    out.push_back(kBosId);
    for (int id : test::tiny_tokenizer().encode(docs[i])) out.push_back(static_cast<std::uint16_t>(id));
  }
  return out;
}

// The text after `key` in `out`, up to the next white space.
inline std::string value_of(const std::string& out, const std::string& key) {
  const std::size_t at = out.find(key);
  if (at == std::string::npos) return "(no " + key + ")";
  const std::size_t from = at + key.size();
  return out.substr(from, out.find_first_of(" \n", from) - from);
}

}  // namespace pgolf::test
