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

#include "fake_hub.h"
#include "helpers.h"
#include "pgolf/data/data.h"
#include "pgolf/data/download.h"
#include "pgolf/data/tokenizer_check.h"
#include "pgolf/core/http.h"
#include "pgolf/core/io.h"

using namespace pgolf;
using test::TempDir;

namespace {
using test::Download;
using test::FakeHub;
using test::kModel;
using test::kVal;
using test::kVocab;
using test::train;

TEST_F(Download, FetchesManifestTokenizerAndShardsByteIdentical) {
  ASSERT_EQ(run(options()), "") << log_;
  for (const auto& rel : {kVal, train(0), train(1), kModel, kVocab}) expect_identical(rel);
  EXPECT_FALSE(std::filesystem::exists(out_.file(train(2))));  // only --train-shards 2
  EXPECT_EQ(read_file(out_.file("manifest.json")), manifest_);
  EXPECT_EQ(summary_.fetched, 5);
  EXPECT_EQ(summary_.present, 0);
  EXPECT_EQ(summary_.data_path, out_.file("datasets/fineweb10B_sp1024"));
  EXPECT_EQ(summary_.tokenizer_path, out_.file(kModel));
  // Beside the shards, the record of the tokenizer the manifest pairs them with.
  TempDir expected;
  write_tokenizer_record(expected.path(), out_.file(kModel));
  EXPECT_EQ(read_file(tokenizer_record_path(summary_.data_path)), read_file(tokenizer_record_path(expected.path())));
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
