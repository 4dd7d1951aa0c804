#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "helpers.h"
#include "pgolf/core/io.h"
#include "pgolf/model/weights.h"

using namespace pgolf;
using test::TempDir;

namespace {

std::vector<NamedTensor> sample() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  return {{"a.weight", at::normal(0.0, 1.0, {3, 5}, gen, at::kFloat)},
          {"b.scale", at::full({}, 0.05, at::kFloat)},
          {"c.half", at::normal(0.0, 1.0, {7}, gen, at::kHalf)},
          {"d.bf16", at::normal(0.0, 1.0, {2, 2, 2}, gen, at::kBFloat16)},
          {"e.ids", at::arange(6, at::kLong).view({2, 3})}};
}

// A file with the given header text and `data_bytes` zero bytes of data.
void write_raw(const std::string& path, const std::string& header, std::size_t data_bytes, std::uint64_t len_field) {
  std::string b(8, '\0');
  std::memcpy(b.data(), &len_field, 8);
  b += header;
  b += std::string(data_bytes, '\0');
  test::write_text(path, b);
}

std::string load_error(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Safetensors, RoundTripIsExact) {
  TempDir dir;
  auto in = sample();
  save_safetensors(dir.file("w.safetensors"), in, {{"format", "pt"}});
  auto out = load_safetensors(dir.file("w.safetensors"));
  ASSERT_EQ(out.size(), in.size());
  std::map<std::string, at::Tensor> byname;
  for (auto& t : out) byname[t.name] = t.tensor;
  for (const auto& t : in) {
    ASSERT_TRUE(byname.count(t.name)) << t.name;
    EXPECT_EQ(byname[t.name].scalar_type(), t.tensor.scalar_type()) << t.name;
    EXPECT_TRUE(at::equal(byname[t.name], t.tensor)) << t.name;
  }
}

// __metadata__ comes back when asked for; it must then be an object of strings.
TEST(Safetensors, MetadataIsReadBackAndMustBeStrings) {
  TempDir dir;
  save_safetensors(dir.file("w.safetensors"), sample(), {{"format", "pt"}, {"note", "a \"quoted\" value"}});
  std::map<std::string, std::string> meta;
  load_safetensors(dir.file("w.safetensors"), &meta);
  EXPECT_EQ(meta, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "a \"quoted\" value"}}));
  auto error = [&](const std::string& header) {
    write_raw(dir.file("m.safetensors"), header, 0, header.size());
    std::map<std::string, std::string> m;
    try {
      load_safetensors(dir.file("m.safetensors"), &m);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error(R"({"__metadata__":{"step":12}})").find("__metadata__ entry 'step' is not a string"), std::string::npos);
  EXPECT_NE(error(R"({"__metadata__":["x"]})").find("__metadata__ is not a JSON object"), std::string::npos);
  EXPECT_EQ(load_error(dir.file("m.safetensors")), "");  // not asked for: not read
  EXPECT_EQ(error(R"({"__metadata__":{}})"), "");
}

// Tensors with no elements have no storage to copy into (found by
// tests/fuzz/fuzz_safetensors: UBSan saw memcpy given a null pointer).
TEST(Safetensors, EmptyTensorsReadBack) {
  TempDir dir;
  save_safetensors(dir.file("e.safetensors"), {{"empty", at::empty({0, 2}, at::kByte)}, {"one", at::ones({}, at::kBFloat16)}});
  auto out = load_safetensors(dir.file("e.safetensors"));
  ASSERT_EQ(out.size(), 2u);
  std::map<std::string, at::Tensor> byname;
  for (auto& t : out) byname[t.name] = t.tensor;
  EXPECT_EQ(byname["empty"].sizes(), at::IntArrayRef({0, 2}));
  EXPECT_EQ(byname["empty"].scalar_type(), at::kByte);
  EXPECT_TRUE(at::equal(byname["one"], at::ones({}, at::kBFloat16)));
}

// The layout other safetensors readers rely on, checked by hand.
TEST(Safetensors, LayoutIsTheStandardOne) {
  TempDir dir;
  auto in = sample();
  save_safetensors(dir.file("w.safetensors"), in, {{"format", "pt"}});
  std::string b = read_file(dir.file("w.safetensors"));
  std::uint64_t len = 0;
  std::memcpy(&len, b.data(), 8);
  EXPECT_EQ((8 + len) % 8, 0u);  // data 8-byte aligned
  auto h = nlohmann::json::parse(b.substr(8, len));
  EXPECT_EQ(h["__metadata__"]["format"], "pt");
  EXPECT_EQ(h["a.weight"]["dtype"], "F32");
  EXPECT_EQ(h["a.weight"]["shape"], nlohmann::json({3, 5}));
  EXPECT_EQ(h["b.scale"]["shape"], nlohmann::json::array());
  EXPECT_EQ(h["c.half"]["dtype"], "F16");
  EXPECT_EQ(h["d.bf16"]["dtype"], "BF16");
  EXPECT_EQ(h["e.ids"]["dtype"], "I64");
  // Offsets tile the data section from 0 to its end.
  std::uint64_t expect = 0;
  for (const auto& t : in) {
    auto off = h[t.name]["data_offsets"];
    EXPECT_EQ(off[0].get<std::uint64_t>(), expect) << t.name;
    expect = off[1];
    const char* raw = b.data() + 8 + len + off[0].get<std::uint64_t>();
    EXPECT_EQ(std::memcmp(raw, t.tensor.data_ptr(), t.tensor.numel() * t.tensor.element_size()), 0) << t.name;
  }
  EXPECT_EQ(8 + len + expect, b.size());
}

TEST(Safetensors, MalformedFilesAreRejectedClearly) {
  TempDir dir;
  test::write_text(dir.file("tiny"), "abc");
  EXPECT_NE(load_error(dir.file("tiny")).find("shorter than the 8-byte header length"), std::string::npos);

  write_raw(dir.file("len"), "{}", 0, 1000);
  EXPECT_NE(load_error(dir.file("len")).find("header length 1000 exceeds the file size"), std::string::npos);

  write_raw(dir.file("json"), "{not json", 0, 9);
  EXPECT_NE(load_error(dir.file("json")).find("header is not valid JSON"), std::string::npos);

  std::string h = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,64]}})";
  write_raw(dir.file("offset"), h, 16, h.size());
  std::string e = load_error(dir.file("offset"));
  EXPECT_NE(e.find("tensor 'w' data_offsets [0, 64] fall outside the 16 data bytes"), std::string::npos) << e;

  h = R"({"w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,16]}})";
  write_raw(dir.file("shape"), h, 16, h.size());
  e = load_error(dir.file("shape"));
  EXPECT_NE(e.find("needs 24 bytes but its range has 16"), std::string::npos) << e;

  h = R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})";
  write_raw(dir.file("dtype"), h, 2, h.size());
  EXPECT_NE(load_error(dir.file("dtype")).find("unknown dtype \"Q4\""), std::string::npos);

  h = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})";
  write_raw(dir.file("overlap"), h, 6, h.size());
  EXPECT_NE(load_error(dir.file("overlap")).find("overlap"), std::string::npos);

  EXPECT_NE(load_error(dir.file("w.safetensors")).find("w.safetensors"), std::string::npos);  // missing file
}

TEST(Safetensors, ModelWeightsLoadBackAndShapeMismatchIsAnError) {
  TempDir dir;
  Config c;
  c.model.num_layers = 2;
  c.model.model_dim = 64;
  GPT a(c.model, model_options_for(at::kCPU, /*seed=*/1));
  save_safetensors(dir.file("m.safetensors"), a.parameters());
  GPT b(c.model, model_options_for(at::kCPU, /*seed=*/2));
  EXPECT_FALSE(at::equal(a.param("blocks.0.attn.c_q.weight"), b.param("blocks.0.attn.c_q.weight")));
  load_weights(b, dir.file("m.safetensors"));
  for (const auto& p : a.parameters()) EXPECT_TRUE(at::equal(p.tensor, b.param(p.name))) << p.name;

  c.model.model_dim = 128;
  GPT wide(c.model, {});
  try {
    load_weights(wide, dir.file("m.safetensors"));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'tok_emb.weight' has shape [1024, 64] but the configured model expects [1024, 128]"),
              std::string::npos)
        << e.what();
  }
}

// The data_offsets must tile the data section exactly. A header length a few
// bytes short still parses (the JSON ends in padding) but shifts every
// tensor; appended bytes, gaps and overlaps are errors too, naming the file
// and the tensor.
TEST(Safetensors, RangesMustCoverTheDataSectionExactly) {
  TempDir dir;
  save_safetensors(dir.file("w.safetensors"), sample());
  const std::string good = read_file(dir.file("w.safetensors"));
  test::write_text(dir.file("junk.safetensors"), good + "junk");
  std::string e = load_error(dir.file("junk.safetensors"));
  EXPECT_NE(e.find("junk.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("4 of the"), std::string::npos) << e;
  EXPECT_NE(e.find("lie after tensor 'e.ids'"), std::string::npos) << e;

  // 4 spaces of padding after the JSON: a length 1 to 4 short parses.
  const std::string h = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  for (std::uint64_t shorter = 1; shorter <= 4; ++shorter) {
    write_raw(dir.file("short"), h + "    ", 8, h.size() + 4 - shorter);
    e = load_error(dir.file("short"));
    EXPECT_NE(e.find(std::to_string(shorter) + " of the " + std::to_string(8 + shorter) + " data bytes lie after tensor 'b'"),
              std::string::npos)
        << shorter << ": " << e;
  }
  write_raw(dir.file("exact"), h + "    ", 8, h.size() + 4);
  EXPECT_EQ(load_safetensors(dir.file("exact")).size(), 2u);

  const std::string gap = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}})";
  write_raw(dir.file("gap"), gap, 8, gap.size());
  e = load_error(dir.file("gap"));
  EXPECT_NE(e.find("tensor 'b' [6, 8) starts 2 bytes after tensor 'a' ends"), std::string::npos) << e;
  const std::string late = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})";
  write_raw(dir.file("late"), late, 6, late.size());
  e = load_error(dir.file("late"));
  EXPECT_NE(e.find("tensor 'a' [2, 6) starts 2 bytes after the start of the data section"), std::string::npos) << e;
  // A shape whose byte count wraps around 2^64 is not taken for a small one.
  const std::string wrap = R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})";
  write_raw(dir.file("wrap"), wrap, 0, wrap.size());
  e = load_error(dir.file("wrap"));
  EXPECT_NE(e.find("needs over 2^64 bytes"), std::string::npos) << e;
}

// Tensor names come from the file: errors show control bytes as \xNN.
TEST(Safetensors, UntrustedNamesArePrintedEscaped) {
  TempDir dir;
  const std::string h = R"({"evil\u001b[2J\n":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})";
  write_raw(dir.file("evil"), h, 2, h.size());
  const std::string e = load_error(dir.file("evil"));
  EXPECT_NE(e.find("tensor 'evil\\x1B[2J\\x0A' has unknown dtype"), std::string::npos) << e;
  EXPECT_EQ(e.find('\x1b'), std::string::npos) << e;
}

// Weights of another dtype than float are refused, not cast and evaluated.
TEST(Safetensors, NonFloatWeightsAreRefused) {
  TempDir dir;
  Config c;
  c.model.num_layers = 2;
  c.model.model_dim = 64;
  GPT m(c.model, {});
  std::vector<NamedTensor> tensors = m.parameters();
  for (auto& t : tensors)
    if (t.name == "blocks.1.mlp.fc.weight") t.tensor = at::ones(t.tensor.sizes(), at::kLong);
  save_safetensors(dir.file("int.safetensors"), tensors);
  try {
    load_weights(m, dir.file("int.safetensors"));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'blocks.1.mlp.fc.weight' is Long, not a floating-point tensor"), std::string::npos)
        << e.what();
  }
}
