#include "pgolf/data/corpus.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>

#include "pgolf/data/caseops.h"
#include "pgolf/data/data.h"
#include "pgolf/data/tokenizer_check.h"
#include "pgolf/core/io.h"

namespace pgolf {
namespace fs = std::filesystem;

namespace {

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

}  // namespace

DocumentReader::DocumentReader(CorpusOptions opts) : opts_(std::move(opts)) {
  if (opts_.format != "auto" && opts_.format != "jsonl" && opts_.format != "text")
    throw std::invalid_argument("unknown input format '" + opts_.format + "' (use auto, jsonl or text)");
  if (opts_.inputs.empty()) throw std::invalid_argument("no input files given");
}

std::string DocumentReader::where() const {
  return opts_.inputs[std::min(file_index_ == 0 ? 0 : file_index_ - 1, opts_.inputs.size() - 1)] + ":" +
         std::to_string(line_);
}

bool DocumentReader::open_next_file() {
  if (file_index_ >= opts_.inputs.size()) return false;
  const std::string& path = opts_.inputs[file_index_++];
  in_ = std::ifstream(path, std::ios::binary);
  if (!in_) throw std::runtime_error("cannot open input '" + path + "'");
  jsonl_ = opts_.format == "jsonl" || (opts_.format == "auto" && (ends_with(path, ".jsonl") || ends_with(path, ".json")));
  line_ = 0;
  return true;
}

bool DocumentReader::next(std::string& doc) {
  if (opts_.max_docs > 0 && docs_ >= opts_.max_docs) return false;
  for (;;) {
    if (!in_.is_open() || in_.peek() == std::ifstream::traits_type::eof()) {
      in_.close();
      if (!open_next_file()) return false;
    }
    if (jsonl_ ? next_jsonl(doc) : next_text(doc)) {
      ++docs_;
      return true;
    }
  }
}

bool DocumentReader::next_jsonl(std::string& doc) {
  std::string line;
  while (std::getline(in_, line)) {
    ++line_;
    if (blank(line)) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw std::runtime_error(where() + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      throw std::runtime_error(where() + ": JSON line has no string field \"text\"");
    doc = j["text"].get<std::string>();
    if (!blank(doc)) return true;
  }
  return false;
}

bool DocumentReader::next_text(std::string& doc) {
  doc.clear();
  std::string line;
  while (std::getline(in_, line)) {
    ++line_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!opts_.separator.empty() && line == opts_.separator) {
      if (!blank(doc)) break;
      doc.clear();
      continue;
    }
    doc += line;
    doc += '\n';
  }
  while (!doc.empty() && doc.back() == '\n') doc.pop_back();
  return !blank(doc);
}

std::vector<std::uint16_t> token_byte_counts(const std::vector<std::uint32_t>& begins, std::size_t text_bytes) {
  std::vector<std::uint16_t> counts(begins.size());
  std::size_t at = 0;
  for (std::size_t k = 0; k < begins.size(); ++k) {
    const std::size_t next = k + 1 < begins.size() ? std::clamp<std::size_t>(begins[k + 1], at, text_bytes) : text_bytes;
    if (next - at > UINT16_MAX)
      throw std::runtime_error("a token stands for " + std::to_string(next - at) +
                               " bytes of text, more than a byte sidecar's uint16 holds");
    counts[k] = static_cast<std::uint16_t>(next - at);
    at = next;
  }
  return counts;
}

namespace {

// Accumulates one split's tokens (and byte counts, for sidecars) and writes a
// shard whenever enough are there.
class SplitWriter {
 public:
  SplitWriter(std::string dir, std::string split, std::int64_t shard_tokens, SplitStats& stats, bool sidecars)
      : dir_(std::move(dir)), split_(std::move(split)), shard_tokens_(shard_tokens), stats_(stats), sidecars_(sidecars) {}

  bool wants_byte_counts() const { return sidecars_; }

  // `counts`: the bytes of each id (token_byte_counts), when sidecars are written.
  void add(const std::string& doc, const std::vector<int>& ids, const std::vector<std::uint16_t>& counts = {}) {
    buf_.push_back(kBosId);
    buf_.insert(buf_.end(), ids.begin(), ids.end());
    if (sidecars_) {
      bytes_.push_back(0);
      bytes_.insert(bytes_.end(), counts.begin(), counts.end());
    }
    stats_.docs += 1;
    stats_.bytes += static_cast<std::int64_t>(doc.size());
    stats_.tokens += static_cast<std::int64_t>(ids.size()) + 1;
    while (static_cast<std::int64_t>(buf_.size()) >= shard_tokens_) flush(shard_tokens_);
  }
  void finish() {
    if (!buf_.empty()) flush(static_cast<std::int64_t>(buf_.size()));
  }

 private:
  void flush(std::int64_t n) {
    char name[64];
    std::snprintf(name, sizeof name, "/fineweb_%s_%06lld.bin", split_.c_str(), static_cast<long long>(stats_.shards));
    write_shard(dir_ + name, std::vector<std::uint16_t>(buf_.begin(), buf_.begin() + n));
    buf_.erase(buf_.begin(), buf_.begin() + n);
    if (sidecars_) {
      write_shard(byte_sidecar_path(dir_ + name), std::vector<std::uint16_t>(bytes_.begin(), bytes_.begin() + n));
      bytes_.erase(bytes_.begin(), bytes_.begin() + n);
    }
    stats_.shards += 1;
  }
  std::string dir_, split_;
  std::int64_t shard_tokens_;
  SplitStats& stats_;
  bool sidecars_;
  std::vector<std::uint16_t> buf_, bytes_;
};

// One status line on stderr, rewritten in place on a terminal, at most once a second.
class Progress {
 public:
  void update(const ShardStats& s, bool last = false) {
    auto now = std::chrono::steady_clock::now();
    if (!last && now - shown_ < std::chrono::seconds(1)) return;
    shown_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    std::int64_t docs = s.train.docs + s.val.docs, tokens = s.train.tokens + s.val.tokens;
    std::fprintf(stderr, "%sshard: %lld docs, %lld tokens, %.1f s, %.0f docs/s%s", tty_ ? "\r" : "",
                 static_cast<long long>(docs), static_cast<long long>(tokens), secs, docs / std::max(secs, 1e-9),
                 tty_ && !last ? "" : "\n");
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), shown_ = start_;
  bool tty_ = ::isatty(2);
};

}  // namespace

ShardStats make_shards(DocumentReader& docs, const Tokenizer& tok, const ShardOptions& opts) {
  if (opts.val_docs < 1) throw std::invalid_argument("--val-docs must be at least 1");
  if (opts.shard_tokens <= 0) throw std::invalid_argument("--shard-tokens must be positive");
  if (tok.vocab_size() > 65536)
    throw std::invalid_argument("tokenizer has " + std::to_string(tok.vocab_size()) + " pieces; shards hold uint16 ids");
  if (opts.caseops)
    for (const auto& m : caseops_markers())
      if (!tok.has_piece(m))
        throw std::invalid_argument("tokenizer '" + tok.path() +
                                    "' has no CaseOps marker pieces: train it with `pgolf tokenizer --caseops`");
  if (fs::exists(opts.output_dir) && !opts.force)
    throw std::runtime_error("output folder '" + opts.output_dir + "' exists (pass --force to replace it)");

  std::vector<std::string> shuffled;
  if (opts.shuffle_seed != 0) {
    for (std::string d; docs.next(d);) shuffled.push_back(std::move(d));
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(opts.shuffle_seed));
  }
  std::size_t shuffled_next = 0;
  auto next_doc = [&](std::string& d) {
    if (opts.shuffle_seed == 0) return docs.next(d);
    if (shuffled_next >= shuffled.size()) return false;
    d = std::move(shuffled[shuffled_next++]);
    return true;
  };

  // Written beside the output folder and renamed into place; a killed
  // `pgolf shard` leaves its temp folder, which the next one removes.
  remove_stale_temps(opts.output_dir);
  const std::string tmp_dir = temp_path_for(opts.output_dir);
  fs::remove_all(tmp_dir);
  make_dirs(tmp_dir);
  ShardStats stats;
  try {
    SplitWriter val(tmp_dir, "val", opts.shard_tokens, stats.val, opts.byte_sidecars || opts.caseops);
    SplitWriter train(tmp_dir, "train", opts.shard_tokens, stats.train, false);
    Progress progress;
    std::vector<std::uint32_t> begins;
    for (std::string doc; next_doc(doc);) {
      SplitWriter& split = stats.val.docs < opts.val_docs ? val : train;
      const CaseOpsText cased = opts.caseops ? caseops_encode(doc) : CaseOpsText{};
      const std::string& text = opts.caseops ? cased.text : doc;
      if (split.wants_byte_counts()) {
        const std::vector<int> ids = tok.encode(text, begins);
        // Spans in the encoded text start at the original byte they came from.
        if (opts.caseops)
          for (auto& b : begins) b = b < cased.source.size() ? cased.source[b] : static_cast<std::uint32_t>(doc.size());
        split.add(doc, ids, token_byte_counts(begins, doc.size()));
      } else {
        split.add(doc, tok.encode(text));
      }
      progress.update(stats);
    }
    val.finish();
    train.finish();
    progress.update(stats, true);
    if (stats.val.docs == 0) throw std::runtime_error("no documents in the input");
    if (stats.train.docs == 0)
      throw std::runtime_error("only " + std::to_string(stats.val.docs) +
                               " documents: all went to the val split; lower --val-docs or add input");
    // Which tokenizer made these shards: train, eval and data compare TOKENIZER_PATH with it.
    write_tokenizer_record(tmp_dir, tok.path());
    fs::remove_all(opts.output_dir);
    fs::rename(tmp_dir, opts.output_dir);
  } catch (...) {
    fs::remove_all(tmp_dir);
    throw;
  }
  return stats;
}

std::string format_stats(const ShardStats& s) {
  std::ostringstream out;
  for (auto [name, st] : {std::pair{"val", s.val}, std::pair{"train", s.train}})
    out << name << ": docs:" << st.docs << " bytes:" << st.bytes << " tokens:" << st.tokens << " shards:" << st.shards
        << '\n';
  return out.str();
}

}  // namespace pgolf
