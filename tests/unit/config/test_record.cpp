// The model record (config/record.h): which keys it holds, its text and
// metadata forms, and how load_config puts it under the configuration.
#include <gtest/gtest.h>

#include <cstring>

#include "helpers.h"
#include "pgolf/config/record.h"

using namespace pgolf;

namespace {

Config loaded(const ModelRecord& r, const std::vector<std::string>& sets, std::map<std::string, std::string>* sources) {
  return load_config({}, sets, [](const char*) -> const char* { return nullptr; }, sources, &r);
}

}  // namespace

// Every key of the model section and the three scoring keys, as the
// configuration writes them; nothing else.
TEST(ModelRecord, HoldsTheModelSectionAndTheScoringKeys) {
  Config c;
  c.model.num_layers = 3;
  c.train.train_seq_len = 128;
  fill_derived(c);
  const ModelRecord r = model_record(c);
  std::size_t model_keys = 0;
  for (const auto& k : config_keys()) {
    const bool scoring = std::strcmp(k.name, "TRAIN_SEQ_LEN") == 0 || std::strcmp(k.name, "EVAL_SEQ_LEN") == 0 ||
                         std::strcmp(k.name, "EVAL_STRIDE") == 0;
    const bool model = std::strcmp(k.group, "model") == 0;
    model_keys += model;
    EXPECT_EQ(r.values.count(k.name), model || scoring ? 1u : 0u) << k.name;
    if (model || scoring) EXPECT_EQ(r.values.at(k.name), get_config_value(c, k)) << k.name;
  }
  EXPECT_GT(model_keys, 20u);
  EXPECT_EQ(r.values.size(), model_keys + 3);
  EXPECT_EQ(r.values.at("NUM_LAYERS"), "3");
  EXPECT_EQ(r.values.at("EVAL_SEQ_LEN"), "128");  // resolved, not 0

  const ModelRecord back = parse_record(format_record(r), "f.pgolf");
  EXPECT_EQ(back.values, r.values);
  EXPECT_EQ(back.file, "f.pgolf");
  std::map<std::string, std::string> meta = record_metadata(r);
  EXPECT_EQ(meta.at("config.NUM_LAYERS"), "3");
  meta["format"] = "pt";  // other metadata is not part of the record
  EXPECT_EQ(record_from_metadata(meta, "w.safetensors").values, r.values);
}

TEST(ModelRecord, MalformedTextIsRefused) {
  auto error = [](const std::string& text) {
    try {
      parse_record(text, "f.pgolf");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error("NUM_LAYERS=2\nMODEL_DIM\n"), "the model record of 'f.pgolf', line 2: expected KEY=VALUE");
  EXPECT_EQ(error("=2\n"), "the model record of 'f.pgolf', line 1: expected KEY=VALUE");
  EXPECT_EQ(error("NUM_LAYERS=2\nNUM_LAYERS=3\n"), "the model record of 'f.pgolf', line 2: a key recorded twice");
  EXPECT_TRUE(parse_record("", "f.pgolf").values.empty());
}

// The record sits under config files, the environment and --set; the keys
// these set to other values are the conflicts, each named with both values
// and where the configured one came from. The derived defaults follow the
// recorded values.
TEST(ModelRecord, LoadConfigPutsItUnderTheConfiguration) {
  ModelRecord r;
  r.file = "a.pgolf";
  r.values = {{"NUM_LAYERS", "3"}, {"LOGIT_SOFTCAP", "20"}, {"EVAL_SEQ_LEN", "32"}, {"EVAL_STRIDE", "8"},
              {"MLP_ACTIVATION", "leaky_relu2"}};
  std::map<std::string, std::string> sources;
  Config c = loaded(r, {}, &sources);
  EXPECT_EQ(c.model.num_layers, 3);
  EXPECT_EQ(c.model.logit_softcap, 20.0);
  EXPECT_EQ(c.model.mlp_activation, MlpActivation::LeakyRelu2);
  EXPECT_EQ(c.eval.eval_seq_len, 32);
  EXPECT_EQ(c.ttt.ttt_context, 32);  // TTT_CONTEXT 0 follows the recorded EVAL_SEQ_LEN
  EXPECT_EQ(sources.at("NUM_LAYERS"), "the record of 'a.pgolf'");
  EXPECT_TRUE(record_conflicts(c, r, sources).empty());

  // The same values written otherwise are no conflict; other values are.
  c = loaded(r, {"NUM_LAYERS=3", "LOGIT_SOFTCAP=20.0", "MLP_ACTIVATION=relu2", "EVAL_SEQ_LEN=64"}, &sources);
  EXPECT_EQ(c.model.mlp_activation, MlpActivation::Relu2);
  const std::vector<std::string> conflicts = record_conflicts(c, r, sources);
  ASSERT_EQ(conflicts.size(), 2u);
  EXPECT_EQ(conflicts[0], "EVAL_SEQ_LEN ('a.pgolf' records '32'; --set EVAL_SEQ_LEN=64 gives '64')");
  EXPECT_EQ(conflicts[1], "MLP_ACTIVATION ('a.pgolf' records 'leaky_relu2'; --set MLP_ACTIVATION=relu2 gives 'relu2')");

  auto error = [&](const ModelRecord& bad) {
    try {
      loaded(bad, {}, nullptr);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ModelRecord bad = r;
  bad.values["NUM_WINGS"] = "2";
  EXPECT_NE(error(bad).find("'a.pgolf' records the key 'NUM_WINGS', which this pgolf does not know"), std::string::npos)
      << error(bad);
  bad = r;
  bad.values["DATA_PATH"] = "/elsewhere";
  EXPECT_NE(error(bad).find("records the key 'DATA_PATH', which a model record does not hold"), std::string::npos) << error(bad);
  bad = r;
  bad.values["NUM_LAYERS"] = "three";
  EXPECT_NE(error(bad).find("the record of 'a.pgolf': NUM_LAYERS='three'"), std::string::npos) << error(bad);
}
