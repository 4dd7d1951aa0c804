#include <gtest/gtest.h>

#include <map>

#include "helpers.h"
#include "pgolf/config/config.h"

using namespace pgolf;
using pgolf::test::TempDir;
using pgolf::test::write_text;

namespace {

Getenv env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Config, DefaultsAreThe12LayerConfiguration) {
  Config c = load_config({}, {}, env_of({}));
  EXPECT_EQ(c.model.num_layers, 12);
  EXPECT_EQ(c.model.model_dim, 512);
  EXPECT_EQ(c.model.num_heads, 8);
  EXPECT_EQ(c.model.num_kv_heads, 4);
  EXPECT_EQ(c.model.mlp_mult, 3);
  EXPECT_EQ(c.train.train_batch_tokens, 524288);
  EXPECT_EQ(c.train.train_seq_len, 1024);
  EXPECT_EQ(c.model.bigram_vocab_size, 2048);
  EXPECT_EQ(c.model.bigram_dim, 96);
  EXPECT_DOUBLE_EQ(c.optim.matrix_lr, 0.025);
  EXPECT_DOUBLE_EQ(c.optim.muon_wd, 0.04);
  EXPECT_EQ(c.averaging.swa_every, 50);
  EXPECT_EQ(c.eval.eval_stride, 64);
  EXPECT_DOUBLE_EQ(c.averaging.swa_start_frac, 0.5);
  EXPECT_TRUE(c.averaging.swa_add_final);
  EXPECT_TRUE(c.model.smear_before_norm);
  EXPECT_EQ(format_value(c.export_.quant_mlp), "int5,floor");
  EXPECT_EQ(format_value(c.export_.quant_attn), "int6,floor");
  EXPECT_EQ(c.model.head_dim(), 64);
  EXPECT_EQ(c.eval.eval_seq_len, 1024);
}

TEST(Config, PrecedenceDefaultsFileEnvSet) {
  TempDir dir;
  write_text(dir.file("a.env"),
             "# comment\n\nNUM_LAYERS=10\nMODEL_DIM = 256 # trailing comment\nexport SEED=7\nFP16_KEEP_NAME_PATTERNS=\"my run\"\n"
             "MATRIX_LR=0.01\n");
  std::map<std::string, std::string> sources;
  Config c = load_config({dir.file("a.env")}, {"MATRIX_LR=0.02", "SEED=9"},
                         env_of({{"NUM_LAYERS", "11"}, {"SEED", "8"}, {"HOME", "/root"}, {"NOT_OURS", "x"}}), &sources);
  EXPECT_EQ(c.model.model_dim, 256);        // file over default
  EXPECT_EQ(c.model.num_layers, 11);        // env over file
  EXPECT_EQ(c.run.seed, 9);               // --set over env over file
  EXPECT_DOUBLE_EQ(c.optim.matrix_lr, 0.02);  // --set over file
  EXPECT_EQ(format_value(c.export_.fp16_keep_name_patterns), "my run");      // quotes stripped
  EXPECT_EQ(c.model.num_heads, 8);          // untouched default
  EXPECT_EQ(sources["MODEL_DIM"], dir.file("a.env") + ":4");
  EXPECT_EQ(sources["NUM_LAYERS"], "env");
  EXPECT_EQ(sources["SEED"], "--set SEED=9");
  EXPECT_EQ(sources.count("NUM_HEADS"), 0u);
}

TEST(Config, LaterFilesOverrideEarlierOnes) {
  TempDir dir;
  write_text(dir.file("a.env"), "NUM_LAYERS=10\n");
  write_text(dir.file("b.env"), "NUM_LAYERS=9\n");
  EXPECT_EQ(load_config({dir.file("a.env"), dir.file("b.env")}, {}, env_of({})).model.num_layers, 9);
}

TEST(Config, UnknownKeyNamesClosestValidKey) {
  TempDir dir;
  write_text(dir.file("a.env"), "NUM_LAYERS=10\nMATRX_LR=0.1\n");
  std::string e = error_of([&] { load_config({dir.file("a.env")}, {}, env_of({})); });
  EXPECT_NE(e.find("a.env:2"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'MATRX_LR'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean MATRIX_LR"), std::string::npos) << e;

  e = error_of([&] { load_config({}, {"NUM_LAYER=3"}, env_of({})); });
  EXPECT_NE(e.find("--set NUM_LAYER=3"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean NUM_LAYERS"), std::string::npos) << e;
}

// train_gpt.py's names (python_names.h) are refused wherever they are set,
// naming the pgolf key to use, or saying pgolf has none and why.
TEST(Config, PythonNamesAreRefusedNamingThePgolfKey) {
  std::string e = error_of([&] { load_config({}, {}, env_of({{"SWA_INTERVAL", "50"}})); });
  EXPECT_NE(e.find("environment variable SWA_INTERVAL is train_gpt.py's name; pgolf's key is SWA_EVERY: set SWA_EVERY "
                   "instead, and unset SWA_INTERVAL"),
            std::string::npos)
      << e;

  e = error_of([&] { load_config({}, {"MUON_WEIGHT_DECAY=0.04"}, env_of({})); });
  EXPECT_NE(e.find("--set MUON_WEIGHT_DECAY=0.04: MUON_WEIGHT_DECAY is train_gpt.py's name; pgolf's key is MUON_WD: use "
                   "MUON_WD instead"),
            std::string::npos)
      << e;

  e = error_of([&] { load_config({}, {}, env_of({{"MTP_NUM_HEADS", "2"}})); });
  EXPECT_NE(e.find("environment variable MTP_NUM_HEADS is train_gpt.py's name; pgolf has no equivalent: "
                   "multi-token-prediction heads"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("; unset MTP_NUM_HEADS"), std::string::npos) << e;
  e = error_of([&] { load_config({}, {"HEAD_LR=0.008"}, env_of({})); });
  EXPECT_NE(e.find("HEAD_LR is train_gpt.py's name; pgolf has no equivalent: "), std::string::npos) << e;
  EXPECT_NE(e.find("; remove it"), std::string::npos) << e;

  // A unit that differs is said, not hidden.
  e = error_of([&] { load_config({}, {}, env_of({{"PRUNE_PCT", "3"}})); });
  EXPECT_NE(e.find("pgolf's key is PRUNE_FRAC (PRUNE_FRAC is a fraction"), std::string::npos) << e;

  TempDir dir;
  write_text(dir.file("a.env"), "NUM_LAYERS=10\nexport LATE_QAT=1\n");
  e = error_of([&] { load_config({dir.file("a.env")}, {}, env_of({})); });
  EXPECT_NE(e.find("a.env:2: LATE_QAT is train_gpt.py's name; pgolf's key is QAT_ENABLED ("), std::string::npos) << e;
  EXPECT_NE(e.find("): use QAT_ENABLED instead"), std::string::npos) << e;
}

TEST(Config, NearestKeyConsultsThePythonNamesFirst) {
  EXPECT_EQ(closest_config_key("MUON_WEIGHT_DECAY"), "MUON_WD");
  EXPECT_EQ(closest_config_key("LATE_QAT"), "QAT_ENABLED");
  EXPECT_EQ(closest_config_key("MATRX_LR"), "MATRIX_LR");
  const std::string e = error_of([&] { load_config({}, {"MATRX_LR=0.02"}, env_of({})); });
  EXPECT_NE(e.find("unknown key 'MATRX_LR' (did you mean MATRIX_LR?"), std::string::npos) << e;
}

TEST(Config, UnparsableValuesNameKeyAndValue) {
  struct Case {
    std::string set, expect;
  } cases[] = {
      {"NUM_LAYERS=twelve", "NUM_LAYERS='twelve' is not an integer"},
      {"NUM_LAYERS=12.5", "NUM_LAYERS='12.5' is not an integer"},
      {"NUM_LAYERS=", "NUM_LAYERS='' is not an integer"},
      {"MATRIX_LR=fast", "MATRIX_LR='fast' is not a finite number"},
      {"MATRIX_LR=0.1x", "MATRIX_LR='0.1x' is not a finite number"},
      {"MATRIX_LR=inf", "MATRIX_LR='inf' is not a finite number"},
      {"SWA_ENABLED=maybe", "SWA_ENABLED='maybe' is not a boolean"},
  };
  for (const auto& c : cases) {
    std::string e = error_of([&] { load_config({}, {c.set}, env_of({})); });
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.set << " -> " << e;
  }
  std::string e = error_of([&] { load_config({}, {}, env_of({{"SEED", "abc"}})); });
  EXPECT_NE(e.find("environment variable SEED"), std::string::npos) << e;
  EXPECT_NE(e.find("SEED='abc'"), std::string::npos) << e;
}

TEST(Config, MalformedLinesAndMissingFiles) {
  TempDir dir;
  write_text(dir.file("bad.env"), "NUM_LAYERS 12\n");
  std::string e = error_of([&] { load_config({dir.file("bad.env")}, {}, env_of({})); });
  EXPECT_NE(e.find("bad.env:1: expected KEY=VALUE"), std::string::npos) << e;
  e = error_of([&] { load_config({}, {"NUM_LAYERS"}, env_of({})); });
  EXPECT_NE(e.find("expected KEY=VALUE"), std::string::npos) << e;
  e = error_of([&] { load_config({dir.file("missing.env")}, {}, env_of({})); });
  EXPECT_NE(e.find("cannot read config file"), std::string::npos) << e;
}

TEST(Config, BooleansAcceptCommonSpellings) {
  for (std::string v : {"1", "true", "TRUE", "yes", "on"})
    EXPECT_TRUE(load_config({}, {"EMA_ENABLED=" + v}, env_of({})).averaging.ema_enabled) << v;
  for (std::string v : {"0", "false", "No", "off"})
    EXPECT_FALSE(load_config({}, {"SWA_ENABLED=" + v}, env_of({})).averaging.swa_enabled) << v;
}

TEST(Config, ValidationRejectsInconsistentShapes) {
  struct Case {
    std::vector<std::string> sets;
    std::string expect;
  } cases[] = {
      {{"NUM_HEADS=7"}, "MODEL_DIM must be divisible by NUM_HEADS"},
      {{"NUM_KV_HEADS=3"}, "NUM_HEADS must be divisible by NUM_KV_HEADS"},
      {{"TRAIN_BATCH_TOKENS=1000"}, "TRAIN_BATCH_TOKENS must be a positive multiple of 8 * TRAIN_SEQ_LEN"},
      {{"PRUNE_FRAC=1.5"}, "PRUNE_FRAC must be in [0, 1]"},
      {{"EVAL_STRIDE=2048"}, "EVAL_STRIDE must be in [1, EVAL_SEQ_LEN]"},
      {{"DEVICE=tpu"}, "DEVICE must be one of auto, cpu, cuda"},
      {{"VOCAB_SIZE=70000"}, "VOCAB_SIZE must fit"},
      {{"TIE_EMBEDDINGS=0"}, "TIE_EMBEDDINGS=0"},
  };
  for (const auto& c : cases) {
    std::string e = error_of([&] { load_config({}, c.sets, env_of({})); });
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.sets[0] << " -> " << e;
  }
}

TEST(Config, FormattedConfigReadsBackIdentically) {
  TempDir dir;
  Config c = load_config({}, {"MATRIX_LR=0.0123456789", "FP16_KEEP_NAME_PATTERNS=a b#c", "ADAM_EPS=1e-8", "EMA_ENABLED=1"}, env_of({}));
  write_text(dir.file("out.env"), format_config(c));
  Config back = load_config({dir.file("out.env")}, {}, env_of({}));
  EXPECT_EQ(format_config(back), format_config(c));
  EXPECT_DOUBLE_EQ(back.optim.matrix_lr, 0.0123456789);
  EXPECT_EQ(format_value(back.export_.fp16_keep_name_patterns), "a b#c");
}

// Values with quote characters in them (caught by the round-trip check of
// tests/fuzz/fuzz_config: a value '"x' was written back as "x, and
// DATA_PATH=./d# b" as DATA_PATH="./d# b"", neither of which reads).
TEST(Config, FormattedQuotesReadBackIdentically) {
  TempDir dir;
  write_text(dir.file("in.env"), "FP16_KEEP_NAME_PATTERNS='\"x'\nLOG_DIR=\"it's # here\"\nINIT_WEIGHTS=a'b \"c\nTOKENIZER_PATH='\"a b\"'\n"
             "DATA_PATH=./d# b\"\n");
  Config c;
  apply_config_file(c, dir.file("in.env"));
  write_text(dir.file("out.env"), format_config(c));
  Config back;
  apply_config_file(back, dir.file("out.env"));
  EXPECT_EQ(format_config(back), format_config(c));
  EXPECT_EQ(format_value(back.export_.fp16_keep_name_patterns), "\"x");
  EXPECT_EQ(back.run.log_dir, "it's # here");
  EXPECT_EQ(back.train.init_weights, "a'b \"c");
  EXPECT_EQ(back.run.tokenizer_path, "\"a b\"");
  EXPECT_EQ(back.run.data_path, "./d# b\"");
}

TEST(Config, EveryKeyIsDocumentedWithTypeAndDefault) {
  std::string doc = describe_config_keys();
  for (const auto& k : config_keys()) {
    EXPECT_NE(doc.find(std::string(k.name) + " (" + k.type + ", default "), std::string::npos) << k.name;
    EXPECT_GT(std::string(k.help).size(), 5u) << k.name;
  }
}

TEST(Config, PresetsInConfigsFolderAllLoad) {
  for (const auto& entry : std::filesystem::directory_iterator(std::string(PGOLF_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".env") continue;
    EXPECT_NO_THROW(load_config({entry.path().string()}, {}, env_of({}))) << entry.path();
  }
}

// Numeric keys have ranges (sizes within practical limits and int32, positive
// finite floats where required, no underflow), paths may not be empty; each
// error names the key, its value and where the value came from.
TEST(Config, OutOfRangeValuesNameKeyValueAndSource) {
  struct Case {
    std::string set, expect;
  } cases[] = {
      {"MODEL_DIM=2147483648", "MODEL_DIM must fit in 32 bits (MODEL_DIM=2147483648 from --set MODEL_DIM=2147483648)"},
      {"MODEL_DIM=1048576", "MODEL_DIM must be at most 65536 (MODEL_DIM=1048576 from --set"},
      {"NUM_HEADS=0", "NUM_HEADS must be positive (NUM_HEADS=0 from --set NUM_HEADS=0)"},
      {"ROPE_BASE=1e-320", "ROPE_BASE='1e-320' is not a number within the range of a double"},
      {"ROPE_BASE=1e-400", "ROPE_BASE='1e-400' is not a number within the range of a double"},
      {"ROPE_BASE=0.5", "ROPE_BASE must be > 1 (ROPE_BASE=0.5 from --set ROPE_BASE=0.5)"},
      {"LOGIT_SOFTCAP=0", "LOGIT_SOFTCAP must be > 0"},
      {"ADAM_EPS=0", "ADAM_EPS must be > 0"},
      {"BETA2=1", "BETA2 must be in [0, 1)"},
      {"MATRIX_LR=-1", "MATRIX_LR must be >= 0"},
      {"TRAIN_SEQ_LEN=-8", "TRAIN_SEQ_LEN must be positive"},
      {"DATA_PATH=", "DATA_PATH must not be empty (DATA_PATH= from --set DATA_PATH=)"},
      {"TOKENIZER_PATH=", "TOKENIZER_PATH must not be empty"},
      {"QUANT_MLP=int9", "QUANT_MLP='int9' is not a valid plan: unknown scheme 'int9'"},
      {"MLP_ACTIVATION=gelu", "--set MLP_ACTIVATION=gelu: MLP_ACTIVATION='gelu' is not one of relu2, leaky_relu2"},
      {"LR_SCHEDULE=cosine", "LR_SCHEDULE='cosine' is not one of warmdown, hold_decay"},
      {"LR_HOLD_FRAC=1", "LR_HOLD_FRAC must be in [0, 1)"},
      {"MIN_LR=2", "MIN_LR must be in [0, 1]"},
      {"MUON_NS_COEFFS=1,2", "MUON_NS_COEFFS='1,2' holds '1,2', not three numbers a,b,c"},
      {"PROGRESS=maybe", "PROGRESS must be one of auto, on, off (PROGRESS=maybe from --set"},
      {"LOOP_LAYERS=3", "--set LOOP_LAYERS=3: LOOP_LAYERS='3' must be A-B with layer numbers 0 <= A <= B"},
      {"LOOP_LAYERS=3-20", "LOOP_LAYERS must name layers below NUM_LAYERS"},
      {"PARALLEL_RESID_FROM=1", "PARALLEL_RESID_FROM must be a decoder layer: layer 1 runs in the encoder half"},
      {"PARALLEL_RESID_FROM=12", "PARALLEL_RESID_FROM must be at most 11"},
      {"CHECKPOINT_EVERY=-1", "CHECKPOINT_EVERY must be >= 0 (CHECKPOINT_EVERY=-1 from --set"},
      {"CHECKPOINT_MINUTES=-0.5", "CHECKPOINT_MINUTES must be >= 0 (CHECKPOINT_MINUTES=-0.5 from --set"},
  };
  for (const auto& c : cases) {
    std::string e = error_of([&] { load_config({}, {c.set}, env_of({})); });
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.set << " -> " << e;
  }
  TempDir dir;
  write_text(dir.file("a.env"), "# heads\n\nNUM_HEADS=0\n");
  std::string e = error_of([&] { load_config({dir.file("a.env")}, {}, env_of({})); });
  EXPECT_NE(e.find("NUM_HEADS must be positive (NUM_HEADS=0 from " + dir.file("a.env") + ":3)"), std::string::npos) << e;
  e = error_of([&] { load_config({}, {}, env_of({{"NUM_HEADS", "0"}})); });
  EXPECT_NE(e.find("(NUM_HEADS=0 from environment variable NUM_HEADS)"), std::string::npos) << e;
  e = error_of([&] { load_config({}, {"NUM_HEADS=7"}, env_of({})); });
  EXPECT_NE(e.find("MODEL_DIM must be divisible by NUM_HEADS (MODEL_DIM=512 by default, NUM_HEADS=7 from --set NUM_HEADS=7)"),
            std::string::npos)
      << e;
  e = error_of([&] { load_config({}, {"QUANT_ATTN=int6,floored"}, env_of({})); });
  EXPECT_NE(e.find("--set QUANT_ATTN=int6,floored: QUANT_ATTN='int6,floored' is not a valid plan"), std::string::npos) << e;
}

// In a file a '#' after white space starts a comment, as in a shell; in
// --set and the environment it is an error, not part of the value; text
// after a closing quote and an unclosed quote are errors.
TEST(Config, InlineCommentsAndQuotes) {
  TempDir dir;
  write_text(dir.file("a.env"), "NUM_LAYERS=9 # nine\nFP16_KEEP_NAME_PATTERNS=\"x # y\"  # a comment\nLOG_DIR=a#b\n");
  Config c = load_config({dir.file("a.env")}, {}, env_of({}));
  EXPECT_EQ(c.model.num_layers, 9);
  EXPECT_EQ(format_value(c.export_.fp16_keep_name_patterns), "x # y");
  EXPECT_EQ(c.run.log_dir, "a#b");
  std::string e = error_of([&] { load_config({}, {"NUM_LAYERS=12 # c"}, env_of({})); });
  EXPECT_NE(e.find("--set NUM_LAYERS=12 # c: NUM_LAYERS='12 # c' holds a '#' comment"), std::string::npos) << e;
  e = error_of([&] { load_config({}, {"DATA_PATH=/data # c"}, env_of({})); });
  EXPECT_NE(e.find("holds a '#' comment"), std::string::npos) << e;
  e = error_of([&] { load_config({}, {}, env_of({{"NUM_LAYERS", "12 # c"}})); });
  EXPECT_NE(e.find("environment variable NUM_LAYERS: NUM_LAYERS='12 # c' holds a '#' comment"), std::string::npos) << e;
  write_text(dir.file("b.env"), "FP16_KEEP_NAME_PATTERNS=\"x\" y\n");
  e = error_of([&] { load_config({dir.file("b.env")}, {}, env_of({})); });
  EXPECT_NE(e.find("b.env:1: 'y' follows the closing quote"), std::string::npos) << e;
  write_text(dir.file("c.env"), "\nFP16_KEEP_NAME_PATTERNS='x\n");
  e = error_of([&] { load_config({dir.file("c.env")}, {}, env_of({})); });
  EXPECT_NE(e.find("c.env:2: the value 'x lacks its closing quote"), std::string::npos) << e;
}

// Config files as a user's world makes them: a UTF-8 BOM is skipped; a
// binary file, one over 1 MiB and anything but a regular file are refused
// naming the file (and the first offending byte), before any key is read.
TEST(Config, FilesWithABomAreReadAndBinaryHugeOrSpecialFilesAreRefused) {
  TempDir dir;
  write_text(dir.file("bom.env"), "\xEF\xBB\xBFNUM_LAYERS=9\r\nSEED=3\r\n");
  const Config c = load_config({dir.file("bom.env")}, {}, env_of({}));
  EXPECT_EQ(c.model.num_layers, 9);
  EXPECT_EQ(c.run.seed, 3);
  write_text(dir.file("bin.env"), std::string("NUM_LAYERS=9\n\x01\x02\x7f", 16));
  std::string e = error_of([&] { load_config({dir.file("bin.env")}, {}, env_of({})); });
  EXPECT_NE(e.find("bin.env' is not text: byte 13 is 0x01"), std::string::npos) << e;
  write_text(dir.file("huge.env"), std::string((1 << 20) + 1, '#'));
  e = error_of([&] { load_config({dir.file("huge.env")}, {}, env_of({})); });
  EXPECT_NE(e.find("huge.env' is larger than 1 MiB"), std::string::npos) << e;
  for (const std::string& special : {std::string("/dev/zero"), dir.path()}) {
    e = error_of([&] { load_config({special}, {}, env_of({})); });
    EXPECT_NE(e.find("'" + special + "' is not a regular file"), std::string::npos) << e;
  }
}

// RUN_ID names a folder inside LOG_DIR, nothing else.
TEST(Config, RunIdIsAPlainFolderName) {
  for (const char* bad : {"..", ".", "../x", "/abs", "a/b", "x y"}) {
    const std::string e = error_of([&] { load_config({}, {std::string("RUN_ID=") + bad}, env_of({})); });
    EXPECT_NE(e.find("RUN_ID must be a plain folder name"), std::string::npos) << bad << ": " << e;
  }
  EXPECT_EQ(load_config({}, {"RUN_ID=exp-3_seed42.b"}, env_of({})).run.run_id, "exp-3_seed42.b");
  EXPECT_EQ(load_config({}, {}, env_of({})).run.run_id, "");
}
