// A small synthetic English-like corpus and a tokenizer trained on it once
// per test process (docs/MODEL.md ("Data") settings, small vocabulary).
#pragma once
#include <string>
#include <vector>

#include "pgolf/config/config.h"
#include "pgolf/data/tokenizer.h"

namespace pgolf::test {

constexpr int kTinyVocab = 400;

// Deterministic documents of a few sentences each.
std::vector<std::string> tiny_documents(int count);

// Trained on tiny_documents(400) on first use; the file lives for the process.
const Tokenizer& tiny_tokenizer();
const std::string& tiny_tokenizer_path();
// A tokenizer of the same size trained on other text (the tiny documents
// spelt backwards), made once per process: not the one that made any shards.
const std::string& other_tokenizer_path();

class TempDir;
// A training configuration for a 2-layer, width-32 model on shards of the
// tiny corpus (made once per process), logging to dir/run.
Config tiny_run(const TempDir& dir, std::int64_t iterations);

}  // namespace pgolf::test
