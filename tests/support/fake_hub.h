// `pgolf download` tests: a fake Hugging Face repository served on 127.0.0.1
// by a small HTTP server on a thread of the test process, and the fixture that
// fills it with two variants.
#pragma once
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include "helpers.h"
#include "pgolf/data/data.h"
#include "pgolf/data/download.h"
#include "pgolf/core/http.h"
#include "pgolf/core/io.h"

namespace pgolf::test {

constexpr const char* kRepo = "test/fake-golf";

// An HTTP/1.1 server for GET, one connection at a time, each closed after
// its response. Files are served by URL path; "Range: bytes=N-" gets a 206
// unless the file is set to ignore ranges. Every request is recorded before
// it is answered, so a client that has its answer sees it in requests().
class FakeHub {
 public:
  struct Request {
    std::string path, range, authorization;
  };

  FakeHub() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;  // an ephemeral port
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("cannot listen on 127.0.0.1");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeHub() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    ::close(fd_);
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The URL path of `rel` (a path under datasets/) in kRepo.
  static std::string url_path(const std::string& rel) {
    return std::string("/datasets/") + kRepo + "/resolve/main/datasets/" + rel;
  }
  void put(const std::string& rel, std::string body) { with_lock([&] { files_[url_path(rel)] = std::move(body); }); }
  void remove(const std::string& rel) { with_lock([&] { files_.erase(url_path(rel)); }); }
  // The next GET of `rel` sends the full length but only `bytes` of the body, then closes.
  void cut_once(const std::string& rel, std::size_t bytes) { with_lock([&] { cut_[url_path(rel)] = bytes; }); }
  void ignore_range(const std::string& rel) { with_lock([&] { ignore_range_[url_path(rel)] = true; }); }

  std::vector<Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::vector<Request> requests_for(const std::string& rel) {
    std::vector<Request> out;
    for (const auto& r : requests())
      if (r.path == url_path(rel)) out.push_back(r);
    return out;
  }
  void clear_requests() { with_lock([&] { requests_.clear(); }); }

 private:
  template <class F>
  void with_lock(F f) {
    std::lock_guard<std::mutex> lock(mu_);
    f();
  }

  void serve() {
    while (true) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stopping_) return;
        continue;
      }
      handle(c);
      ::close(c);
    }
  }

  static void send_all(int c, const std::string& s) {
    for (std::size_t done = 0; done < s.size();) {
      const ssize_t n = ::send(c, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;  // the client went away
      done += static_cast<std::size_t>(n);
    }
  }

  static void respond(int c, const std::string& status, const std::string& headers, const std::string& body,
                      std::size_t length) {
    send_all(c, "HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(length) + "\r\n" + headers +
                    "Connection: close\r\n\r\n" + body);
  }

  void handle(int c) {
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      head.append(buf, static_cast<std::size_t>(n));
    }
    std::istringstream lines(head.substr(0, head.find("\r\n\r\n")));
    std::string line, method, target;
    std::getline(lines, line);
    std::istringstream(line) >> method >> target;
    Request req{target, "", ""};
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon), value = line.substr(colon + 1);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      value.erase(0, value.find_first_not_of(' '));
      if (name == "range") req.range = value;
      if (name == "authorization") req.authorization = value;
    }

    std::string body;
    std::size_t cut = std::string::npos;
    bool found = false, honour_range = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
      auto it = files_.find(target);
      if (it != files_.end()) {
        found = true;
        body = it->second;
        honour_range = !ignore_range_[target];
        if (cut_.count(target)) {
          cut = cut_[target];
          cut_.erase(target);
        }
      }
    }
    if (method != "GET" || !found) return respond(c, "404 Not Found", "", "not found", 9);
    std::size_t from = 0;
    if (honour_range && req.range.rfind("bytes=", 0) == 0) {
      from = std::stoull(req.range.substr(6));
      if (from >= body.size())
        return respond(c, "416 Range Not Satisfiable", "Content-Range: bytes */" + std::to_string(body.size()) + "\r\n",
                       "", 0);
      const std::string range = "Content-Range: bytes " + std::to_string(from) + "-" +
                                std::to_string(body.size() - 1) + "/" + std::to_string(body.size()) + "\r\n";
      body = body.substr(from);
      return respond(c, "206 Partial Content", range, body.substr(0, std::min(cut, body.size())), body.size());
    }
    respond(c, "200 OK", "", body.substr(0, std::min(cut, body.size())), body.size());
  }

  int fd_ = -1, port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, std::string> files_;
  std::map<std::string, std::size_t> cut_;
  std::map<std::string, bool> ignore_range_;
  std::vector<Request> requests_;
};

// The bytes of a valid shard of `n` tokens (written by write_shard).
inline std::string shard_bytes(std::size_t n, std::uint16_t seed) {
  TempDir dir;
  std::vector<std::uint16_t> tokens(n);
  for (std::size_t i = 0; i < n; ++i) tokens[i] = static_cast<std::uint16_t>((i * 7 + seed) % 1024);
  write_shard(dir.file("s.bin"), tokens);
  return read_file(dir.file("s.bin"));
}

inline const std::string kDir = "datasets/fineweb10B_sp1024/";
inline const std::string kVal = kDir + "fineweb_val_000000.bin";
inline std::string train(int i) { return kDir + "fineweb_train_00000" + std::to_string(i) + ".bin"; }
inline const std::string kModel = "tokenizers/fineweb_1024_bpe.model";
inline const std::string kVocab = "tokenizers/fineweb_1024_bpe.vocab";

// A repository with two variants: sp1024 (1 val, 3 train shards, its
// tokenizer) and byte260 (listed only).
class Download : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!http_available()) GTEST_SKIP() << "built without libcurl";
    files_[kVal] = shard_bytes(300, 1);
    files_[train(0)] = shard_bytes(500, 2);
    files_[train(1)] = shard_bytes(4000, 3);
    files_[train(2)] = shard_bytes(100, 4);
    files_[kModel] = "fake sentencepiece model";
    files_[kVocab] = "<unk>\t0\n<s>\t0\n";
    put_manifest(300, 4600);
    for (const auto& [rel, body] : files_) hub_.put(rel, body);
  }

  void put_manifest(std::int64_t tokens_val, std::int64_t tokens_train) {
    nlohmann::json m = {
        {"datasets",
         {{{"name", "fineweb10B_sp1024"},
           {"tokenizer_name", "sp_bpe_1024"},
           {"stats", {{"files_val", 1}, {"files_train", 3}, {"tokens_val", tokens_val}, {"tokens_train", tokens_train}}}},
          {{"name", "fineweb10B_byte260"},
           {"tokenizer_name", "pure_byte_260"},
           {"stats", {{"files_val", 1}, {"files_train", 2}}}}}},
        {"tokenizers",
         {{{"name", "sp_bpe_1024"}, {"model_path", kModel}, {"vocab_path", kVocab}}, {{"name", "pure_byte_260"}}}}};
    manifest_ = m.dump(2);
    hub_.put("manifest.json", manifest_);
  }

  DownloadOptions options(int train_shards = 2) const {
    DownloadOptions o;
    o.repo = kRepo;
    o.endpoint = hub_.endpoint();
    o.out = out_.path();
    o.train_shards = train_shards;
    o.jobs = 3;
    return o;
  }

  // Runs the download, keeping its log; the exception's message, or "" on success.
  std::string run(const DownloadOptions& o) {
    std::ostringstream out;
    try {
      summary_ = download_dataset(o, out);
      log_ = out.str();
      return "";
    } catch (const std::exception& e) {
      log_ = out.str();
      return e.what();
    }
  }

  void expect_identical(const std::string& rel) {
    ASSERT_TRUE(std::filesystem::exists(out_.file(rel))) << rel;
    EXPECT_TRUE(read_file(out_.file(rel)) == files_[rel]) << rel << " differs from the server's copy";
    EXPECT_FALSE(std::filesystem::exists(out_.file(rel + ".part"))) << rel;
  }

  FakeHub hub_;
  TempDir out_;
  std::map<std::string, std::string> files_;  // the repository, by path under datasets/
  std::string manifest_;
  DownloadSummary summary_;
  std::string log_;
};

}  // namespace pgolf::test
