#include "tiny_corpus.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "helpers.h"
#include "pgolf/data/data.h"
#include "pgolf/data/tokenizer_train.h"

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

namespace {
// A kTinyVocab-piece tokenizer trained on `docs`, written to `path`.
std::string train_tiny(const std::vector<std::string>& docs, const std::string& path) {
  std::size_t i = 0;
  train_tokenizer(
      [&](std::string& d) {
        if (i >= docs.size()) return false;
        d = docs[i++];
        return true;
      },
      kTinyVocab, path, 1);
  return path;
}
}  // namespace

const std::string& tiny_tokenizer_path() {
  static TempDir dir;
  static const std::string path = train_tiny(tiny_documents(400), dir.file("tiny.model"));
  return path;
}

const std::string& other_tokenizer_path() {
  static TempDir dir;
  static const std::string path = [] {
    std::vector<std::string> docs = tiny_documents(400);
    for (std::string& d : docs) std::reverse(d.begin(), d.end());
    return train_tiny(docs, dir.file("other.model"));
  }();
  return path;
}

// A tiny model on shards of the tiny corpus, tokenised with the tiny tokenizer.
Config tiny_run(const TempDir& dir, std::int64_t iterations) {
  static bool made = false;
  static TempDir data;
  if (!made) {
    std::vector<std::uint16_t> stream;
    for (const auto& d : tiny_documents(300)) {
      stream.push_back(kBosId);
      for (int id : tiny_tokenizer().encode(d)) stream.push_back(static_cast<std::uint16_t>(id));
    }
    const std::size_t cut = stream.size() / 5;
    write_shard(data.file("fineweb_val_000000.bin"), {stream.begin(), stream.begin() + cut});
    write_shard(data.file("fineweb_train_000000.bin"), {stream.begin() + cut, stream.end()});
    made = true;
  }
  Config c;
  c.run.data_path = data.path();
  c.run.tokenizer_path = tiny_tokenizer_path();
  c.run.log_dir = dir.path();
  c.run.run_id = "run";
  c.runtime.device = "cpu";
  c.model.vocab_size = kTinyVocab;
  c.model.num_layers = 2;
  c.model.model_dim = 32;
  c.model.num_heads = 2;
  c.model.num_kv_heads = 1;
  c.model.mlp_mult = 2;
  c.model.bigram_vocab_size = 64;
  c.model.bigram_dim = 16;
  c.train.train_seq_len = 16;
  c.train.train_batch_tokens = 8 * 16 * 2;
  c.schedule.iterations = iterations;
  c.train.warmup_steps = 0;
  c.schedule.warmdown_iters = 4;
  c.schedule.max_wallclock_seconds = 0;
  c.train.val_loss_every = 0;
  c.train.val_batch_size = 8 * 16 * 8;
  c.train.train_log_every = 100;
  c.averaging.swa_every = 2;
  c.eval.eval_stride = 8;
  return c;
}

const Tokenizer& tiny_tokenizer() {
  static const Tokenizer tok(tiny_tokenizer_path());
  return tok;
}

}  // namespace pgolf::test
