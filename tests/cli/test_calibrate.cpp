// GPTQ plans through the whole export (`pgolf export`).
#include <gtest/gtest.h>

#include <regex>

#include <ATen/core/grad_mode.h>

#include "helpers.h"
#include "pgolf/export/calibrate.h"
#include "pgolf/data/data.h"
#include "pgolf/core/io.h"
#include "pgolf/model/layers.h"
#include "pgolf/train/train.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

// QUANT_*=...,gptq through `pgolf train`: calibrated on training shards, stored with its flag, read back.
TEST(Calibrate, GptqPlansRunThroughTheExport) {
  TempDir dir;
  Config c = test::tiny_run(dir, 6);
  c.export_.quant_passthrough_numel = 256;
  c.export_.quant_mlp = parse_tensor_plan("int5,gptq");
  c.export_.quant_attn = parse_tensor_plan("int6,k=3,sym,gptq");
  c.export_.gptq_tokens = 2048;
  test::write_text(dir.file("g.env"), format_config(c));
  auto run = test::run_pgolf("train --config " + dir.file("g.env"));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("gptq: Hessians of 12 matrices from 2048 training tokens"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("final_sliding_window_exact val_loss:"), std::string::npos);
  // The calibration reads training data: it counts as training in the compliance check.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(run.output, m, std::regex("compliance: training ([0-9.]+) s \\+ calibration on training data ([0-9.]+) s = ([0-9.]+) s <= 600 s: pass")))
      << run.output;
  EXPECT_NEAR(std::stod(m[1]) + std::stod(m[2]), std::stod(m[3]), 0.11);
  EXPECT_NE(run.output.find("compliance: PASS"), std::string::npos) << run.output;
  auto inspect = test::run_pgolf("inspect " + dir.file("run/final_model.pgolf"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_NE(inspect.output.find("int6,k=3,sym,gptq"), std::string::npos) << inspect.output;
  EXPECT_NE(inspect.output.find("int5,gptq"), std::string::npos) << inspect.output;
}
