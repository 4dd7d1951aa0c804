#include <gtest/gtest.h>
#include <sys/resource.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "helpers.h"
#include "artifact_bytes.h"
#include "pgolf/export/artifact.h"
#include "pgolf/core/io.h"
#include "pgolf/core/run.h"
#include "pgolf/export/submission.h"

using namespace pgolf;
using test::TempDir;

using test::fix_header_crc;
using test::put32;
using test::put64;
using test::read_error;
using test::small_config;

TEST(Artifact, WriteReadIsExact) {
  TempDir dir;
  Config c = small_config();
  GPT m(c.model, {});
  auto q = quantize_tensors(m.parameters(), quant_options(c.export_, c.qat));
  std::uint64_t size = write_artifact(dir.file("a.pgolf"), q);
  EXPECT_EQ(size, std::filesystem::file_size(dir.file("a.pgolf")));
  auto back = read_artifact(dir.file("a.pgolf")).tensors;
  ASSERT_EQ(back.size(), q.size());
  for (std::size_t i = 0; i < q.size(); ++i) {
    EXPECT_EQ(back[i].name, q[i].name);
    EXPECT_EQ(back[i].plan, q[i].plan) << q[i].name;
    EXPECT_EQ(back[i].shape, q[i].shape);
    EXPECT_TRUE(at::equal(back[i].data, q[i].data.reshape({-1}))) << q[i].name;
    EXPECT_EQ(back[i].scale.defined(), q[i].scale.defined());
    if (q[i].scale.defined()) {
      EXPECT_TRUE(at::equal(back[i].scale, q[i].scale)) << q[i].name;
    }
  }
  // Loading it into a fresh model gives exactly the dequantised weights.
  GPT fresh(c.model, model_options_for(at::kCPU, /*seed=*/5));
  load_artifact_into(fresh, back, "a.pgolf");
  for (std::size_t i = 0; i < q.size(); ++i)
    EXPECT_TRUE(at::equal(fresh.parameters()[i].tensor.detach(), dequantize(q[i]))) << q[i].name;
  // Nothing but the artifact is left in the folder.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Artifact, EveryCodecRoundTripsAndIsNamedInTheHeader) {
  TempDir dir;
  Config c = small_config();
  GPT m(c.model, {});
  const auto q = quantize_tensors(m.parameters(), quant_options(c.export_, c.qat));
  const std::string payload = serialize_tensors(q);
  for (Codec codec : {Codec::Zstd, Codec::Xz, Codec::Brotli}) {
    const std::string path = dir.file(std::string("a.") + codec_name(codec));
    write_artifact(path, q, codec, "NUM_LAYERS=2\n");
    EXPECT_EQ(read_file(path).substr(12, 4), std::string(reinterpret_cast<const char*>(&codec), 4)) << codec_name(codec);
    const ArtifactContents back = read_artifact(path);
    EXPECT_EQ(back.codec, codec);
    EXPECT_EQ(back.version, 3u);
    EXPECT_EQ(back.record_text, "NUM_LAYERS=2\n") << codec_name(codec);
    EXPECT_EQ(serialize_tensors(back.tensors), payload) << codec_name(codec);
  }
}

TEST(Artifact, EveryCorruptionHasItsOwnMessage) {
  TempDir dir;
  Config c = small_config();
  GPT m(c.model, {});
  write_artifact(dir.file("good"), quantize_tensors(m.parameters(), quant_options(c.export_, c.qat)));
  const std::string good = read_file(dir.file("good"));
  std::string msg;
  auto check = [&](const std::string& name, const std::string& bytes, ArtifactError::Kind kind, const std::string& text) {
    test::write_text(dir.file(name), bytes);
    EXPECT_EQ(read_error(dir.file(name), &msg), kind) << name << ": " << msg;
    EXPECT_NE(msg.find(text), std::string::npos) << name << ": " << msg;
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
  };
  check("short", good.substr(0, 20), ArtifactError::Truncated, "less than the 40-byte header");
  std::string b = good;
  b[0] = 'X';
  check("magic", b, ArtifactError::BadMagic, "bad magic");
  b = good;
  b[10] ^= 1;  // a header field without fixing its checksum
  check("headerflip", b, ArtifactError::HeaderChecksum, "header checksum mismatch");
  b = good;
  put32(b, 8, 7);
  fix_header_crc(b);
  check("version", b, ArtifactError::BadVersion, "unsupported version 7");
  b = good;
  put32(b, 12, 9);
  fix_header_crc(b);
  check("codec", b, ArtifactError::BadCodec, "unknown codec id 9");
  check("truncated", good.substr(0, good.size() - 100), ArtifactError::SizeMismatch, "truncated or padded");
  check("padded", good + "junk", ArtifactError::SizeMismatch, "truncated or padded");
  b = good;
  put64(b, 16, std::uint64_t{1} << 50);
  fix_header_crc(b);
  check("absurd", b, ArtifactError::AbsurdLength, "exceeds the 4 GiB limit");
  b = good;
  b[good.size() / 2] ^= 0x40;  // one flipped bit in the compressed payload
  check("payloadflip", b, ArtifactError::PayloadChecksum, "payload checksum mismatch");
}

TEST(Artifact, MalformedPayloadsAreRejected) {
  Config c = small_config();
  GPT m(c.model, {});
  auto q = quantize_tensors(m.parameters(), quant_options(c.export_, c.qat));
  const std::string payload = serialize_tensors(q);
  auto error = [&](const std::string& p) {
    try {
      deserialize_tensors(p, "x.pgolf");
    } catch (const ArtifactError& e) {
      EXPECT_EQ(e.kind, ArtifactError::BadPayload);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error(payload.substr(0, payload.size() - 1)).find("payload ends inside"), std::string::npos);
  EXPECT_NE(error(payload + "x").find("trailing bytes"), std::string::npos);
  std::string p = payload;
  std::uint32_t huge = 0xFFFFFFFF;
  std::memcpy(p.data(), &huge, 4);  // absurd tensor count: runs out of bytes, no huge allocation
  EXPECT_NE(error(p).find("payload ends inside"), std::string::npos);
  // First record: name "tok_emb.weight" (14 bytes); its scheme byte at 4 + 2 + 14.
  p = payload;
  p[4 + 2 + 14] = 9;
  EXPECT_NE(error(p).find("unknown scheme 9"), std::string::npos);
  // Then bits, flags, ndim, the clip quantile and SDClip k (f64 each) and the dimensions.
  const std::size_t rec = 4 + 2 + 14;
  ASSERT_EQ(q[0].plan.scheme, Scheme::Fp16);  // tok_emb
  p = payload;
  std::int64_t dim = 3;
  std::memcpy(p.data() + rec + 4 + 16, &dim, 8);  // shape no longer fits the data length
  EXPECT_NE(error(p).find("does not fit its shape"), std::string::npos);
  // An int-row record (the first attention matrix): bad bits, flags and quantile.
  std::size_t off = 4, k = 0;
  for (; q[k].plan.scheme != Scheme::IntRow; ++k) off += serialize_tensors({q[k]}).size() - 4;
  const std::size_t at_scheme = off + 2 + q[k].name.size();
  ASSERT_EQ(static_cast<int>(payload[at_scheme]), 2);
  p = payload;
  p[at_scheme + 1] = 12;
  EXPECT_NE(error(p).find("has 12 bits"), std::string::npos);
  p = payload;
  p[at_scheme + 2] = 16;
  EXPECT_NE(error(p).find("unknown flags 16"), std::string::npos);
  p = payload;
  double clip = 1.5;
  std::memcpy(p.data() + at_scheme + 4, &clip, 8);
  EXPECT_NE(error(p).find("clip quantile"), std::string::npos);
  p = payload;
  double sd_k = -2;
  std::memcpy(p.data() + at_scheme + 12, &sd_k, 8);
  EXPECT_NE(error(p).find("SDClip k"), std::string::npos);
}

// Tensors with no elements have no storage to copy into (found by
// tests/fuzz/fuzz_artifact_payload: UBSan saw memcpy given a null pointer).
TEST(Artifact, EmptyTensorsReadBack) {
  TempDir dir;
  const std::vector<QuantTensor> q = {quantize_tensor("empty", at::empty({0, 3}), TensorPlan(Scheme::Fp16), {}),
                                      quantize_tensor("one", at::ones({}), TensorPlan(Scheme::Fp32), {})};
  write_artifact(dir.file("e.pgolf"), q);
  auto back = read_artifact(dir.file("e.pgolf")).tensors;
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].shape, (std::vector<std::int64_t>{0, 3}));
  EXPECT_EQ(back[0].data.numel(), 0);
  EXPECT_TRUE(back[1].shape.empty());
  EXPECT_TRUE(at::equal(back[1].data, at::ones({1})));
}

TEST(Artifact, ShapeMismatchWithConfiguredModelIsAClearError) {
  TempDir dir;
  Config c = small_config();
  GPT m(c.model, {});
  write_artifact(dir.file("a.pgolf"), quantize_tensors(m.parameters(), quant_options(c.export_, c.qat)));
  c.model.num_layers = 3;
  GPT other(c.model, {});
  try {
    load_artifact_into(other, read_artifact(dir.file("a.pgolf")).tensors, dir.file("a.pgolf"));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("has no tensor 'blocks.2.attn.c_q.weight'"), std::string::npos) << e.what();
  }
}


// The export refuses weights that are not finite, and weights whose stored
// form would decode to infinity (1e30 in the fp16 tok_emb), before anything
// is written.
TEST(Artifact, TheExportRefusesWhatWouldNotDecodeFinite) {
  TempDir dir;
  Config c = small_config();
  c.run.log_dir = dir.path();
  c.run.run_id = "x";
  RunLog log(c, RunLog::Mode::Silent);
  for (const auto& [name, value, message] :
       {std::tuple<const char*, double, const char*>{"blocks.0.mlp.fc.weight", NAN, "weight 'blocks.0.mlp.fc.weight' holds non-finite values"},
        {"tok_emb.weight", 1e30, "'tok_emb.weight' stored fp16 decodes to non-finite values"}}) {
    GPT m(c.model, {});
    {
      at::NoGradGuard no_grad;
      m.param(name).detach()[0][0] = value;
    }
    const std::string path = dir.file(std::string(name) + ".pgolf");
    try {
      export_submission(m, c, path, log);
      ADD_FAILURE() << "no error for " << name;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(path)) << name;
  }
}

// Version 2 files (no model record) are still read, and say they record
// nothing; a damaged record is an error of its own.
TEST(Artifact, Version2IsReadAndADamagedRecordIsNamed) {
  TempDir dir;
  Config c = small_config();
  GPT m(c.model, {});
  const auto q = quantize_tensors(m.parameters(), quant_options(c.export_, c.qat));
  const std::string payload = serialize_tensors(q), packed = compress(payload, Codec::Zstd);
  std::string v2(kArtifactHeaderBytes, '\0');  // the header, then the compressed payload alone
  std::memcpy(v2.data(), kArtifactMagic, sizeof kArtifactMagic);
  put32(v2, 8, 2);
  put32(v2, 12, static_cast<std::uint32_t>(Codec::Zstd));
  put64(v2, 16, payload.size());
  put64(v2, 24, packed.size());
  put32(v2, 32, static_cast<std::uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(packed.data()), packed.size())));
  fix_header_crc(v2);
  test::write_text(dir.file("v2.pgolf"), v2 + packed);
  const ArtifactContents old = read_artifact(dir.file("v2.pgolf"));
  EXPECT_EQ(old.version, 2u);
  EXPECT_EQ(old.record_text, "");
  EXPECT_EQ(serialize_tensors(old.tensors), payload);
  EXPECT_FALSE(read_model_record(dir.file("v2.pgolf")).has_value());

  write_artifact(dir.file("v3.pgolf"), q, Codec::Zstd, "NUM_LAYERS=2\nMODEL_DIM=128\n");
  const std::optional<ModelRecord> r = read_model_record(dir.file("v3.pgolf"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->values, (std::map<std::string, std::string>{{"NUM_LAYERS", "2"}, {"MODEL_DIM", "128"}}));
  EXPECT_EQ(r->file, dir.file("v3.pgolf"));
  std::string b = read_file(dir.file("v3.pgolf"));
  put32(b, kArtifactHeaderBytes, 1u << 20);  // the record's raw size, with the checksum made to agree
  put32(b, 32, static_cast<std::uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(b.data()) + kArtifactHeaderBytes,
                                                  b.size() - kArtifactHeaderBytes)));
  fix_header_crc(b);
  test::write_text(dir.file("damaged.pgolf"), b);
  std::string msg;
  EXPECT_EQ(read_error(dir.file("damaged.pgolf"), &msg), ArtifactError::BadRecord);
  EXPECT_NE(msg.find("the model record declares 1048576 bytes"), std::string::npos) << msg;
}
