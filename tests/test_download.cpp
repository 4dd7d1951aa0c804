// `pgolf download` against a fake Hugging Face repository served on
// 127.0.0.1 by a small HTTP server on a thread of this process: full
// download, resume with Range, a server that ignores Range, damaged shards,
// 404, reruns, HF_TOKEN and the manifest's checks. Nothing touches the
// network; nothing depends on timing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
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

using namespace pgolf;
using test::TempDir;

namespace {

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
std::string shard_bytes(std::size_t n, std::uint16_t seed) {
  TempDir dir;
  std::vector<std::uint16_t> tokens(n);
  for (std::size_t i = 0; i < n; ++i) tokens[i] = static_cast<std::uint16_t>((i * 7 + seed) % 1024);
  write_shard(dir.file("s.bin"), tokens);
  return read_file(dir.file("s.bin"));
}

const std::string kDir = "datasets/fineweb10B_sp1024/";
const std::string kVal = kDir + "fineweb_val_000000.bin";
std::string train(int i) { return kDir + "fineweb_train_00000" + std::to_string(i) + ".bin"; }
const std::string kModel = "tokenizers/fineweb_1024_bpe.model";
const std::string kVocab = "tokenizers/fineweb_1024_bpe.vocab";

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

TEST_F(Download, FetchesManifestTokenizerAndShardsByteIdentical) {
  ASSERT_EQ(run(options()), "") << log_;
  for (const auto& rel : {kVal, train(0), train(1), kModel, kVocab}) expect_identical(rel);
  EXPECT_FALSE(std::filesystem::exists(out_.file(train(2))));  // only --train-shards 2
  EXPECT_EQ(read_file(out_.file("manifest.json")), manifest_);
  EXPECT_EQ(summary_.fetched, 5);
  EXPECT_EQ(summary_.present, 0);
  EXPECT_EQ(summary_.data_path, out_.file("datasets/fineweb10B_sp1024"));
  EXPECT_EQ(summary_.tokenizer_path, out_.file(kModel));
  // The shards are usable by pgolf's reader; no request carried a token or a range.
  EXPECT_EQ(shard_files(val_pattern(summary_.data_path)).size(), 1u);
  EXPECT_EQ(shard_files(train_pattern(summary_.data_path)).size(), 2u);
  for (const auto& r : hub_.requests()) {
    EXPECT_EQ(r.authorization, "") << r.path;
    EXPECT_EQ(r.range, "") << r.path;
  }
  EXPECT_EQ(hub_.requests().size(), 6u);  // manifest + 5 files
  EXPECT_EQ(log_.find('\r'), std::string::npos) << "no progress control codes unless asked";
}

TEST_F(Download, AllTrainShardsMatchTheManifestsTokenCounts) {
  ASSERT_EQ(run(options(3)), "") << log_;
  expect_identical(train(2));
  put_manifest(300, 4601);
  std::filesystem::remove(out_.file(train(2)));
  const std::string err = run(options(3));
  EXPECT_NE(err.find("train shards hold 4600 tokens but the manifest"), std::string::npos) << err;
}

TEST_F(Download, InterruptedTransferResumesWithRange) {
  hub_.cut_once(train(1), 1500);
  ASSERT_EQ(run(options()), "") << log_;
  expect_identical(train(1));
  auto reqs = hub_.requests_for(train(1));
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].range, "");
  EXPECT_EQ(reqs[1].range, "bytes=1500-");
  EXPECT_NE(log_.find("retrying (attempt 2 of"), std::string::npos) << log_;
}

TEST_F(Download, LeftoverPartsAreResumedOrRestarted) {
  make_dirs(out_.file("datasets/fineweb10B_sp1024"));
  test::write_text(out_.file(train(0) + ".part"), files_[train(0)].substr(0, 700));  // a true prefix: continued
  test::write_text(out_.file(train(1) + ".part"), std::string(100, 'x'));  // junk: the server sends everything
  hub_.ignore_range(train(1));
  test::write_text(out_.file(kVal + ".part"), files_[kVal] + "extra");  // longer than the file: 416, start over
  ASSERT_EQ(run(options()), "") << log_;
  expect_identical(train(0));
  expect_identical(train(1));
  expect_identical(kVal);
  EXPECT_EQ(hub_.requests_for(train(0)).at(0).range, "bytes=700-");
  EXPECT_EQ(hub_.requests_for(train(1)).at(0).range, "bytes=100-");
  auto val = hub_.requests_for(kVal);
  ASSERT_EQ(val.size(), 2u);
  EXPECT_EQ(val[0].range, "bytes=" + std::to_string(files_[kVal].size() + 5) + "-");
  EXPECT_EQ(val[1].range, "");
  EXPECT_NE(log_.find("ignored the Range request for " + hub_.endpoint() + FakeHub::url_path(train(1))),
            std::string::npos)
      << log_;
}

TEST_F(Download, CorruptShardsFailNamingTheFile) {
  std::string bad_magic = files_[train(0)];
  bad_magic[0] ^= 0x55;
  hub_.put(train(0), bad_magic);
  hub_.put(train(1), files_[train(1)].substr(0, files_[train(1)].size() - 10));  // wrong size
  const std::string err = run(options());
  EXPECT_NE(err.find("2 of 5 files failed"), std::string::npos) << err;
  EXPECT_NE(err.find("'" + out_.file(train(0)) + "' was not written"), std::string::npos) << err;
  EXPECT_NE(err.find("bad magic"), std::string::npos) << err;
  EXPECT_NE(err.find("'" + out_.file(train(1)) + "' was not written"), std::string::npos) << err;
  EXPECT_NE(err.find("truncated body"), std::string::npos) << err;
  for (int i : {0, 1}) {
    EXPECT_FALSE(std::filesystem::exists(out_.file(train(i))));
    EXPECT_FALSE(std::filesystem::exists(out_.file(train(i) + ".part")));
  }
  expect_identical(kVal);  // the other transfers completed
  expect_identical(kModel);
}

TEST_F(Download, MissingFileNamesUrlStatusAndFile) {
  hub_.remove(kVocab);
  const std::string err = run(options());
  EXPECT_NE(err.find("cannot download " + hub_.endpoint() + FakeHub::url_path(kVocab) + " to '" + out_.file(kVocab) +
                     "': HTTP 404"),
            std::string::npos)
      << err;
  EXPECT_EQ(hub_.requests_for(kVocab).size(), 1u) << "a 404 is not retried";
  expect_identical(kModel);
}

TEST_F(Download, RerunTransfersNothingAndReplacesADamagedShard) {
  ASSERT_EQ(run(options()), "") << log_;
  hub_.clear_requests();
  ASSERT_EQ(run(options()), "") << log_;
  ASSERT_EQ(hub_.requests().size(), 1u);  // the manifest alone
  EXPECT_EQ(hub_.requests()[0].path, FakeHub::url_path("manifest.json"));
  EXPECT_EQ(summary_.fetched, 0);
  EXPECT_EQ(summary_.present, 5);

  test::write_text(out_.file(train(1)), "not a shard");
  hub_.clear_requests();
  ASSERT_EQ(run(options()), "") << log_;
  EXPECT_NE(log_.find("'" + out_.file(train(1)) + "' exists but is damaged"), std::string::npos) << log_;
  EXPECT_EQ(hub_.requests().size(), 2u);  // the manifest and that shard
  EXPECT_EQ(hub_.requests_for(train(1)).size(), 1u);
  expect_identical(train(1));
}

TEST_F(Download, ManifestChecksNameTheChoices) {
  DownloadOptions o = options();
  o.variant = "sp9999";
  std::string err = run(o);
  EXPECT_NE(err.find("no dataset fineweb10B_sp9999: --variant must be one of sp1024, byte260"), std::string::npos)
      << err;
  err = run(options(4));
  EXPECT_NE(err.find("fineweb10B_sp1024 has 3 train shards"), std::string::npos) << err;
  EXPECT_NE(err.find("--train-shards 3 or fewer"), std::string::npos) << err;
  EXPECT_EQ(hub_.requests().size(), 2u);  // the manifest, twice: nothing else
  o = options();
  o.repo = "test/absent";
  err = run(o);
  EXPECT_NE(err.find("/datasets/test/absent/resolve/main/datasets/manifest.json: HTTP 404"), std::string::npos) << err;
}

TEST_F(Download, CommandSendsHfTokenAndReadsHfEndpoint) {
  const std::string env = "HF_TOKEN=secret-token HF_ENDPOINT=" + hub_.endpoint() + " PROGRESS=off ";
  auto r = test::run_shell(env + PGOLF_BINARY + " download --repo " + kRepo + " --out " + out_.path() +
                           " --train-shards 1 --jobs 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("DATA_PATH=" + out_.file("datasets/fineweb10B_sp1024")), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("TOKENIZER_PATH=" + out_.file(kModel)), std::string::npos) << r.output;
  ASSERT_EQ(hub_.requests().size(), 5u);  // manifest, val, train 0, model, vocab
  for (const auto& req : hub_.requests()) EXPECT_EQ(req.authorization, "Bearer secret-token") << req.path;
  expect_identical(train(0));
  EXPECT_EQ(r.output.find("\033[K"), std::string::npos) << "PROGRESS=off: no control codes";

  r = test::run_shell(env + "PROGRESS=on " + PGOLF_BINARY + " download --repo " + kRepo + " --out " + out_.path() +
                      " --train-shards 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\r\033[K"), std::string::npos) << "PROGRESS=on: lines clear the progress line";

  r = test::run_shell(env + PGOLF_BINARY + " download --repo " + kRepo + " --out " + out_.path() + " --variant sp9");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("pgolf: error: the manifest"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("one of sp1024, byte260"), std::string::npos) << r.output;
}

TEST(DownloadHelp, NamesTheEnvironmentVariables) {
  auto r = test::run_pgolf("download --help");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"--variant", "--train-shards", "--repo", "--endpoint", "--out", "--jobs", "HF_ENDPOINT",
                        "HF_TOKEN", "PROGRESS"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s;
}

TEST(DownloadUrl, IsTheMainRevisionOfTheDatasetRepository) {
  EXPECT_EQ(repo_file_url("https://huggingface.co/", "willdepueoai/parameter-golf", "datasets/manifest.json"),
            "https://huggingface.co/datasets/willdepueoai/parameter-golf/resolve/main/datasets/manifest.json");
}

TEST(DownloadWithoutCurl, SaysWhatIsMissing) {
  if (http_available()) GTEST_SKIP() << "built with libcurl";
  std::ostringstream log;
  try {
    download_dataset(DownloadOptions{}, log);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("built without libcurl"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("libcurl4-openssl-dev"), std::string::npos) << e.what();
  }
}

}  // namespace
