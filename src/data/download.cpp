#include "pgolf/data/download.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "pgolf/data/data.h"
#include "pgolf/data/tokenizer_check.h"
#include "pgolf/core/http.h"
#include "pgolf/core/io.h"

namespace pgolf {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kAttempts = 4;  // per file: the first try and three retries (resumed)
const std::string kDatasetPrefix = "fineweb10B_";  // + variant: a dataset's name

// One file of the plan. `rel` is its path under datasets/ in the repository
// and under opts.out here.
struct Item {
  std::string rel, url, path;
  bool shard = false;
  bool val = false;
  std::int64_t tokens = 0;  // a valid shard's token count
  std::string error;        // why it failed; empty when it is in place
  std::atomic<std::int64_t> size{-1}, have{0};  // whole file and bytes on disk (-1: not known yet)
};

// Size of `path` in bytes, -1 when it does not exist.
std::int64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.st_size) : -1;
}

std::string mb(std::int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", bytes / 1e6);
  return buf;
}

// A file's size for a person: bytes below 100 kB, else MB.
std::string size_text(std::int64_t bytes) { return bytes < 100000 ? std::to_string(bytes) + " bytes" : mb(bytes) + " MB"; }

std::string duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

// Why a GET failed, for a person: the URL, the file, the HTTP status or
// network error, and what to check.
std::string failure(const std::string& url, const std::string& path, const HttpResult& r) {
  std::string s = "cannot download " + url + (path.empty() ? "" : " to '" + path + "'") + ": ";
  s += r.status >= 400 ? "HTTP " + std::to_string(r.status) : r.error;
  if (r.status == 401 || r.status == 403)
    s += " (a private or gated repository: set HF_TOKEN to a token that can read it)";
  else if (r.status == 404)
    s += " (not in the repository: check --repo and --endpoint/HF_ENDPOINT)";
  else if (r.status == 0)
    s += " (no answer: check the network, --endpoint/HF_ENDPOINT, or a proxy in https_proxy)";
  return s;
}

// A path from the manifest, which must stay inside opts.out.
std::string relative_path(const std::string& p, const std::string& manifest_url) {
  if (p.empty() || p[0] == '/' || ("/" + p + "/").find("/../") != std::string::npos)
    throw std::runtime_error("manifest " + manifest_url + " names the path '" + printable(p) +
                             "', which is not a plain relative path: refusing to write it");
  return p;
}

// What the manifest says to fetch for opts.variant, and the counts to check.
struct Plan {
  std::string name;                      // fineweb10B_<variant>
  std::string dataset, tokenizer_model;  // rel paths
  std::vector<std::string> shards, tokenizer_files;
  std::int64_t val_files = 0, tokens_val = -1, tokens_train = -1;  // -1: not in the manifest, or not all fetched
};

Plan make_plan(const nlohmann::json& m, const DownloadOptions& opts, const std::string& url) {
  Plan plan;
  const std::string name = plan.name = kDatasetPrefix + opts.variant;
  const nlohmann::json* ds = nullptr;
  std::string names;
  for (const auto& d : m.at("datasets")) {
    const std::string n = d.at("name").get<std::string>();
    if (n == name) ds = &d;
    names += (names.empty() ? "" : ", ") + (n.rfind(kDatasetPrefix, 0) == 0 ? n.substr(kDatasetPrefix.size()) : n);
  }
  if (!ds)
    throw std::runtime_error("the manifest " + url + " has no dataset " + name + ": --variant must be one of " +
                             (names.empty() ? "(none listed)" : names));
  const auto& stats = ds->at("stats");
  const std::int64_t train_files = stats.at("files_train").get<std::int64_t>();
  plan.val_files = stats.at("files_val").get<std::int64_t>();
  if (opts.train_shards > train_files)
    throw std::runtime_error(name + " has " + std::to_string(train_files) + " train shards (manifest " + url +
                             "): pass --train-shards " + std::to_string(train_files) + " or fewer");
  if (stats.contains("tokens_val")) plan.tokens_val = stats["tokens_val"].get<std::int64_t>();
  if (stats.contains("tokens_train") && opts.train_shards == train_files)
    plan.tokens_train = stats["tokens_train"].get<std::int64_t>();

  plan.dataset = "datasets/" + name;
  char file[64];
  for (std::int64_t i = 0; i < plan.val_files; ++i) {
    std::snprintf(file, sizeof file, "/fineweb_val_%06lld.bin", static_cast<long long>(i));
    plan.shards.push_back(plan.dataset + file);
  }
  for (int i = 0; i < opts.train_shards; ++i) {
    std::snprintf(file, sizeof file, "/fineweb_train_%06d.bin", i);
    plan.shards.push_back(plan.dataset + file);
  }

  const std::string tok = ds->at("tokenizer_name").get<std::string>();
  for (const auto& t : m.at("tokenizers")) {
    if (t.at("name").get<std::string>() != tok) continue;
    for (const std::string key : {"model_path", "vocab_path"}) {
      if (!t.contains(key) || !t[key].is_string()) continue;  // e.g. a byte tokenizer has no model
      plan.tokenizer_files.push_back(relative_path(t[key], url));
      if (key == "model_path") plan.tokenizer_model = plan.tokenizer_files.back();
    }
    return plan;
  }
  throw std::runtime_error("the manifest " + url + " names tokenizer '" + tok + "' for " + name +
                           " but does not list it under tokenizers[]: the manifest is broken");
}

// Validates a shard file; "" when valid, else the reason.
std::string check_shard(const std::string& path, Item& item) {
  try {
    item.tokens = static_cast<std::int64_t>(Shard(path).num_tokens());
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

// Per-file lines and the in-place progress line, from any thread.
class Reporter {
 public:
  Reporter(std::ostream& out, bool progress) : out_(out), progress_(progress) {}
  void line(const std::string& s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (progress_) out_ << "\r\033[K";
    out_ << s << std::endl;
  }
  void status(const std::string& s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (progress_) out_ << "\r\033[K" << s << std::flush;
  }
  void end_status() { status(""); }

 private:
  std::ostream& out_;
  bool progress_;
  std::mutex mu_;
};

// The transfers of one run and their totals.
class Downloader {
 public:
  Downloader(const DownloadOptions& opts, std::vector<Item*> todo, Reporter& report)
      : opts_(opts), todo_(std::move(todo)), report_(report) {}

  // Runs the transfers on opts.jobs threads, refreshing the progress line
  // while they run; each item ends in place or with its error set.
  void run() {
    std::vector<std::thread> workers;
    const std::size_t n = std::min<std::size_t>(todo_.size(), static_cast<std::size_t>(opts_.jobs));
    for (std::size_t i = 0; i < n; ++i) workers.emplace_back([this] { work(); });
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return finished_ == todo_.size(); }))
        report_.status(progress());
    }
    for (auto& w : workers) w.join();
    report_.end_status();
  }
  std::int64_t transferred() const { return transferred_; }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  void work() {
    for (std::size_t i; (i = next_++) < todo_.size();) {
      Item& item = *todo_[i];
      try {
        fetch(item);
      } catch (const std::exception& e) {
        item.error = e.what();
      }
      std::size_t done;
      {
        std::lock_guard<std::mutex> lock(mu_);
        done = ++finished_;
      }
      cv_.notify_all();
      report_.line("download: " + item.path + (item.error.empty() ? " " + size_text(item.size) : " FAILED") +
                   " [" + std::to_string(done) + "/" + std::to_string(todo_.size()) + ", " + progress() + "]");
    }
  }

  // One file: GET into <file>.part (resumed from its size), retried on
  // network errors and server errors, checked, renamed into place.
  void fetch(Item& item) {
    const std::string part = item.path + ".part";
    const HttpRequest req{item.url, opts_.token};
    for (int attempt = 1;; ++attempt) {
      const std::int64_t offset = std::max<std::int64_t>(file_size(part), 0);
      auto on_start = [&](std::int64_t from, std::int64_t size) {
        item.have = from;
        item.size = size;
        if (from < offset)
          report_.line("download: the server ignored the Range request for " + item.url + ": fetching '" +
                       item.path + "' from its start");
      };
      auto on_bytes = [&](std::int64_t n) {
        item.have += n;
        transferred_ += n;
      };
      item.have = offset;
      const HttpResult r = http_get_file(req, part, offset, on_start, on_bytes);
      if (r.error.empty()) break;
      if (r.status == 416 && offset > 0) {  // the .part is not a prefix of the file: start over
        std::remove(part.c_str());
        continue;
      }
      const bool permanent = r.status >= 400 && r.status < 500 && r.status != 408 && r.status != 429;
      if (permanent || attempt == kAttempts)
        throw std::runtime_error(failure(item.url, item.path, r) +
                                 (attempt > 1 ? " (after " + std::to_string(attempt) + " attempts)" : ""));
      report_.line("download: " + failure(item.url, item.path, r) + "; retrying (attempt " +
                   std::to_string(attempt + 1) + " of " + std::to_string(kAttempts) + ")");
      std::this_thread::sleep_for(std::chrono::seconds(attempt));
    }
    item.size = item.have.load();
    if (item.shard) {
      const std::string why = check_shard(part, item);
      if (!why.empty()) {
        std::remove(part.c_str());
        throw std::runtime_error(item.url + " is not a valid shard, so '" + item.path + "' was not written: " + why +
                                 " (the copy on the server is damaged, or --endpoint is not a parameter-golf "
                                 "repository)");
      }
    }
    if (std::rename(part.c_str(), item.path.c_str()) != 0)
      throw std::runtime_error("cannot rename '" + part + "' to '" + item.path + "'");
  }

  // "<done>/<total> MB, <rate> MB/s, ETA <t>". A file whose size is not
  // known yet counts as the largest known one: the small tokenizer files go
  // first, and train shards are all about the same size.
  std::string progress() const {
    std::int64_t have = 0, known = 0, largest = -1, unknown = 0;
    for (const Item* it : todo_) {
      have += it->have;
      const std::int64_t size = it->size;
      if (size < 0) ++unknown;
      else known += size, largest = std::max(largest, size);
    }
    const double total = largest >= 0 ? known + static_cast<double>(unknown) * largest : 0;
    const double secs = seconds(), rate = secs > 0 ? transferred_ / secs : 0;
    return mb(have) + "/" + (largest >= 0 ? mb(static_cast<std::int64_t>(total)) : "?") + " MB, " +
           mb(static_cast<std::int64_t>(rate)) + " MB/s, ETA " +
           (largest >= 0 && rate > 0 ? duration((total - have) / rate) : "?");
  }

  const DownloadOptions& opts_;
  std::vector<Item*> todo_;
  Reporter& report_;
  const Clock::time_point start_ = Clock::now();
  std::atomic<std::size_t> next_{0};
  std::atomic<std::int64_t> transferred_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t finished_ = 0;
};

// The sum of the val (or train) shards' tokens against the manifest's count
// (expected < 0: none to check).
void check_tokens(const std::vector<Item>& items, bool val, std::int64_t expected, const std::string& url) {
  if (expected < 0) return;
  std::int64_t sum = 0;
  for (const Item& it : items)
    if (it.shard && it.val == val) sum += it.tokens;
  if (sum != expected)
    throw std::runtime_error(std::string("the ") + (val ? "val" : "train") + " shards hold " + std::to_string(sum) +
                             " tokens but the manifest " + url + " says " + std::to_string(expected) +
                             ": the shards or the manifest are from another version of the data (delete the "
                             "shards and download again)");
}

}  // namespace

std::string repo_file_url(const std::string& endpoint, const std::string& repo, const std::string& path) {
  std::string e = endpoint;
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e + "/datasets/" + repo + "/resolve/main/" + path;
}

DownloadSummary download_dataset(const DownloadOptions& opts, std::ostream& log) {
  if (opts.jobs < 1) throw std::invalid_argument("--jobs must be at least 1");
  if (opts.train_shards < 0) throw std::invalid_argument("--train-shards must be 0 or more");
  const std::string manifest_url = repo_file_url(opts.endpoint, opts.repo, "datasets/manifest.json");
  std::string body;
  const HttpResult r = http_get_string({manifest_url, opts.token}, &body);
  if (!r.error.empty()) throw std::runtime_error(failure(manifest_url, "", r));
  Plan plan;
  try {
    plan = make_plan(nlohmann::json::parse(body), opts, manifest_url);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("the manifest " + manifest_url + " is not what pgolf expects (" + e.what() +
                             "): is --repo a parameter-golf data repository?");
  }
  make_dirs(opts.out + "/" + plan.dataset);
  write_file_atomic(opts.out + "/manifest.json", body);

  std::vector<Item> items(plan.shards.size() + plan.tokenizer_files.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    Item& it = items[i];
    it.shard = i >= plan.tokenizer_files.size();  // the tokenizer first: small, and needed by every shard
    it.rel = it.shard ? plan.shards[i - plan.tokenizer_files.size()] : plan.tokenizer_files[i];
    it.val = it.shard && it.rel.find("/fineweb_val_") != std::string::npos;
    it.url = repo_file_url(opts.endpoint, opts.repo, "datasets/" + it.rel);
    it.path = opts.out + "/" + it.rel;
  }

  // Files already in place and valid are kept; a damaged shard is fetched again.
  Reporter report(log, opts.progress);
  std::vector<Item*> todo;
  DownloadSummary summary;
  for (Item& it : items) {
    if (file_size(it.path) >= 0) {
      const std::string why = it.shard ? check_shard(it.path, it) : "";
      if (why.empty()) {
        ++summary.present;
        continue;
      }
      report.line("download: '" + it.path + "' exists but is damaged (" + why + "): downloading it again");
      std::remove(it.path.c_str());
    }
    make_dirs(it.path.substr(0, it.path.rfind('/')));
    todo.push_back(&it);
  }
  report.line("download: " + plan.name + " from " + opts.repo + ": " +
              std::to_string(plan.val_files) + " val + " + std::to_string(opts.train_shards) + " train shards, " +
              std::to_string(plan.tokenizer_files.size()) + " tokenizer files; " + std::to_string(summary.present) +
              " already here, " + std::to_string(todo.size()) + " to fetch into " + opts.out);

  Downloader downloader(opts, todo, report);
  if (!todo.empty()) downloader.run();

  std::vector<std::string> errors;
  for (const Item* it : todo) {
    if (it->error.empty()) ++summary.fetched;
    else errors.push_back(it->error);
  }
  if (!errors.empty()) {
    std::string msg = std::to_string(errors.size()) + " of " + std::to_string(items.size()) +
                      " files failed (run the command again to retry; finished files are kept):";
    for (const auto& e : errors) msg += "\n  " + e;
    throw std::runtime_error(msg);
  }
  check_tokens(items, true, plan.tokens_val, manifest_url);
  check_tokens(items, false, plan.tokens_train, manifest_url);
  summary.bytes = downloader.transferred();
  summary.data_path = opts.out + "/" + plan.dataset;
  if (!plan.tokenizer_model.empty()) {
    summary.tokenizer_path = opts.out + "/" + plan.tokenizer_model;
    // The manifest pairs these shards with this tokenizer: train, eval and data compare TOKENIZER_PATH with it.
    write_tokenizer_record(summary.data_path, summary.tokenizer_path);
  }
  report.line("download: done: " + std::to_string(summary.fetched) + " files fetched (" + mb(summary.bytes) +
              " MB in " + duration(downloader.seconds()) + "), " + std::to_string(summary.present) +
              " already here");
  return summary;
}

}  // namespace pgolf
