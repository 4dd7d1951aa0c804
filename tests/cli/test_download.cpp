// `pgolf download` as the real binary against a fake Hugging Face repository on 127.0.0.1.
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
#include "pgolf/core/http.h"
#include "pgolf/core/io.h"

using namespace pgolf;
using test::TempDir;

namespace {
using test::Download;
using test::kModel;
using test::kRepo;
using test::train;

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

}  // namespace
