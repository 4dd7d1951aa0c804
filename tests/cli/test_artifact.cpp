// `pgolf inspect` of artifacts, as the real binary.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <zlib.h>

#include <cstring>

#include "helpers.h"
#include "artifact_bytes.h"
#include "pgolf/export/artifact.h"
#include "pgolf/core/io.h"

using namespace pgolf;
using test::TempDir;

using test::fix_header_crc;
using test::put64;
using test::read_error;
using test::small_config;

// A header declaring a 3 GiB or 4 GiB payload (with its checksum recomputed)
// is rejected under every codec before that much is allocated, naming the
// file, the declared size and what the data holds; `pgolf inspect` says the
// same (not `std::bad_alloc`).
TEST(Artifact, HugeDeclaredPayloadIsRejectedWithoutAllocatingIt) {
  TempDir dir;
  Config c = small_config();
  GPT m(c.model, {});
  const auto q = quantize_tensors(m.parameters(), quant_options(c.export_, c.qat));
  const std::uint64_t real = serialize_tensors(q).size();
  auto peak_kb = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
  };
  for (Codec codec : {Codec::Zstd, Codec::Xz, Codec::Brotli}) {
    write_artifact(dir.file("good"), q, codec);
    for (std::uint64_t declared : {std::uint64_t{3} << 30, kArtifactMaxPayload}) {
      std::string b = read_file(dir.file("good"));
      put64(b, 16, declared);
      fix_header_crc(b);
      const std::string name = std::string("huge.") + codec_name(codec) + "." + std::to_string(declared);
      test::write_text(dir.file(name), b);
      std::string msg;
      const long before = peak_kb();
      EXPECT_EQ(read_error(dir.file(name), &msg), ArtifactError::Decompress) << msg;
      EXPECT_LT(peak_kb() - before, 256 * 1024) << name << ": the declared payload was allocated";
      EXPECT_NE(msg.find(name), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::to_string(declared) + "-byte payload the header declares"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::to_string(real) + " bytes"), std::string::npos) << msg;  // what the data holds
    }
  }
  const auto r = test::run_pgolf("inspect " + dir.file("huge.brotli." + std::to_string(kArtifactMaxPayload)));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("pgolf: error: bad artifact"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("4294967296-byte payload the header declares"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("bad_alloc"), std::string::npos) << r.output;
}

// Tensor names come from the file: `pgolf inspect` and error messages show
// control bytes and other non-printables as \xNN, never raw.
TEST(Artifact, UntrustedNamesArePrintedEscaped) {
  TempDir dir;
  Config c = small_config();
  GPT m(c.model, {});
  auto q = quantize_tensors(m.parameters(), quant_options(c.export_, c.qat));
  q[0].name = "evil\x1b[2J\xff\n";
  q[1].name = q[0].name;
  write_artifact(dir.file("dup.pgolf"), q);
  std::string msg;
  read_error(dir.file("dup.pgolf"), &msg);
  EXPECT_NE(msg.find("tensor 'evil\\x1B[2J\\xFF\\x0A' appears twice"), std::string::npos) << msg;
  q[1].name = "ok";
  write_artifact(dir.file("a.pgolf"), q);
  const auto r = test::run_pgolf("inspect " + dir.file("a.pgolf"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("evil\\x1B[2J\\xFF\\x0A"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('\x1b'), std::string::npos) << "a raw escape byte was printed";
  EXPECT_EQ(printable("a\\b\t"), "a\\\\b\\x09");
}
