#include "tiny_corpus.h"

#include <cstdint>
#include <filesystem>
#include <memory>

#include "helpers.h"

namespace pgolf::test {

std::vector<std::string> tiny_documents(int count) {
  static const char* words[] = {
      "the",   "of",     "and",   "to",    "in",      "model",  "train", "data",    "token", "layer",
      "small", "golf",   "score", "bytes", "weights", "quick",  "brown", "fox",     "jumps", "over",
      "lazy",  "dog",    "river", "stone", "light",   "window", "paper", "garden",  "music", "number",
      "city",  "winter", "water", "story", "people",  "house",  "green", "morning", "quiet", "answer"};
  const int n_words = sizeof(words) / sizeof(words[0]);
  std::uint64_t state = 12345;
  auto next = [&](int mod) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int>((state >> 33) % static_cast<std::uint64_t>(mod));
  };
  std::vector<std::string> docs;
  for (int d = 0; d < count; ++d) {
    std::string doc;
    int sentences = 1 + next(4);
    for (int s = 0; s < sentences; ++s) {
      int len = 4 + next(8);
      for (int w = 0; w < len; ++w) {
        std::string word = words[next(n_words)];
        if (w == 0) word[0] = static_cast<char>(word[0] - 'a' + 'A');
        doc += word;
        if (next(10) == 0) doc += " " + std::to_string(next(3000));
        doc += w + 1 < len ? " " : ". ";
      }
    }
    doc.pop_back();
    docs.push_back(doc);
  }
  return docs;
}

const std::string& tiny_tokenizer_path() {
  static TempDir dir;
  static const std::string path = [] {
    std::string p = dir.file("tiny.model");
    auto docs = tiny_documents(400);
    std::size_t i = 0;
    train_tokenizer(
        [&](std::string& d) {
          if (i >= docs.size()) return false;
          d = docs[i++];
          return true;
        },
        kTinyVocab, p, 1);
    return p;
  }();
  return path;
}

const Tokenizer& tiny_tokenizer() {
  static const Tokenizer tok(tiny_tokenizer_path());
  return tok;
}

}  // namespace pgolf::test
