// A small synthetic English-like corpus and a tokenizer trained on it once
// per test process (SPEC §1 settings, small vocabulary).
#pragma once
#include <string>
#include <vector>

#include "pgolf/tokenizer.h"

namespace pgolf::test {

constexpr int kTinyVocab = 400;

// Deterministic documents of a few sentences each.
std::vector<std::string> tiny_documents(int count);

// Trained on tiny_documents(400) on first use; the file lives for the process.
const Tokenizer& tiny_tokenizer();
const std::string& tiny_tokenizer_path();

}  // namespace pgolf::test
