// `pgolf eval` refusing bad weights and tokens, as the real binary.
#include <gtest/gtest.h>

#include <cmath>

#include "helpers.h"
#include "pgolf/data/data.h"
#include "pgolf/eval/eval.h"
#include "pgolf/model/weights.h"
#include "tiny_corpus.h"

using namespace pgolf;
using test::TempDir;

// `pgolf eval` of weights holding a NaN exits non-zero with that message;
// a validation shard with an id >= VOCAB_SIZE names the shard, the position
// and the id (not `index out of range in self` and a stack trace).
TEST(Eval, CommandFailsOnNanWeightsAndOutOfRangeTokens) {
  TempDir dir;
  Config c = test::tiny_run(dir, 1);
  test::write_text(dir.file("tiny.env"), format_config(c));
  GPT m(c.model, {});
  save_safetensors(dir.file("good.safetensors"), m.parameters());
  m.param("blocks.0.attn.c_q.weight").detach().fill_(NAN);
  save_safetensors(dir.file("nan.safetensors"), m.parameters());
  auto r = test::run_pgolf("eval " + dir.file("nan.safetensors") + " --config " + dir.file("tiny.env"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("pgolf: error: final_prequant_sliding: val_loss:nan"), std::string::npos) << r.output;

  make_dirs(dir.file("bad"));
  std::vector<std::uint16_t> val(200, 7);
  val[123] = static_cast<std::uint16_t>(test::kTinyVocab + 100);
  write_shard(dir.file("bad/fineweb_val_000000.bin"), val);
  r = test::run_pgolf("eval " + dir.file("good.safetensors") + " --config " + dir.file("tiny.env") + " --set DATA_PATH=" +
                      dir.file("bad"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("fineweb_val_000000.bin': token 123 of 200 has id 500, not below VOCAB_SIZE=400"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("index out of range"), std::string::npos) << r.output;
}
