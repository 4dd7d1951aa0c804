#include "pgolf/config/python_names.h"

#include <algorithm>

namespace pgolf {

const std::vector<PythonName>& python_names() {
  // From the baseline train_gpt.py, the seed scripts #219 and #286, the 10L
  // record and the names users brought from other record scripts; docs/FROM_PYTHON.md
  // shows the same rows (a test compares them).
  static const std::vector<PythonName> names = {
      {"EMBED_LR", "", "the rate of an untied input embedding (TIE_EMBEDDINGS=0), which pgolf does not implement; the tied embedding's rate is TIED_EMBED_LR"},
      {"HEAD_LR", "", "the rate of an untied output head (TIE_EMBEDDINGS=0), which pgolf does not implement; the tied embedding's rate is TIED_EMBED_LR"},
      {"CONTROL_TENSOR_NAME_PATTERNS", "", "which tensors are control tensors (trained by AdamW, not Muon, and exported by their own rule) is fixed by pgolf's model: docs/ARTIFACT.md lists them"},
      {"INT8_KEEP_FLOAT_FP32_NAME_PATTERNS", "", "which small tensors the export keeps fp32: in pgolf the control tensors, when QUANT_CONTROL_FP32_FIRST=1"},
      {"MTP_NUM_HEADS", "", "multi-token-prediction heads (trained, then left out of the export) are not implemented; the scripts' default is 0"},
      {"MTP_LOSS_WEIGHT", "", "the weight of the multi-token-prediction loss, which pgolf does not implement (see MTP_NUM_HEADS)"},
      {"MUON_BETA2", "", "#219 reads it and uses it nowhere: Muon keeps no second moment"},
      {"INT5_MLP", "QUANT_MLP", "a switch: 1 stores the MLP matrices int5 with the scale floor, QUANT_MLP=int5,floor; 0 int6, QUANT_MLP=int6,floor"},
      {"REQUIRE_ZSTD", "", "pgolf has zstd built in and never falls back to zlib; ARTIFACT_CODEC chooses brotli, zstd or xz"},
      {"MUON_WEIGHT_DECAY", "MUON_WD", ""},
      {"ADAM_WEIGHT_DECAY", "ADAM_WD", ""},
      {"KEEP_LAST_K_FP16", "FP16_KEEP_NAME_PATTERNS", "a count: the last K blocks keep attn.c_k fp16; pgolf takes name fragments, so K=1 with 10 layers is FP16_KEEP_NAME_PATTERNS=blocks.9.attn.c_k"},
      {"WEIGHT_DECAY", "ADAM_WD", "the 10L record's AdamW decay; its Muon decay is fixed at 0.04, pgolf's MUON_WD"},
      {"PRUNE_PCT", "PRUNE_FRAC", "PRUNE_FRAC is a fraction, 0.03 for 3%; the scripts' PRUNE_PCT is a fraction in most and a percent in some: divide a percent by 100"},
      {"SWA_INTERVAL", "SWA_EVERY", ""},
      {"LATE_QAT", "QAT_ENABLED", "LATE_QAT starts QAT when the LR multiplier falls below LATE_QAT_THRESHOLD; pgolf's starts at QAT_START_FRAC of the wall clock"},
      {"LATE_QAT_THRESHOLD", "QAT_START_FRAC", "a threshold of the LR multiplier, not a fraction of the run: QAT_START_FRAC is the fraction of the wall clock, or of ITERATIONS without a cap, after which QAT runs"},
      {"QAT_FRACTION", "QAT_START_FRAC", "QAT_FRACTION is the final part of the run that uses QAT: QAT_START_FRAC = 1 - QAT_FRACTION"},
      {"MIXED_INT5_ENABLED", "QUANT_MLP", "a switch for int5 MLP matrices: QUANT_MLP=int5, or int5,floor with the seeds' scale floor; attention has QUANT_ATTN"},
  };
  return names;
}

const PythonName* find_python_name(std::string_view name) {
  const auto& names = python_names();
  const auto it = std::find_if(names.begin(), names.end(), [&](const PythonName& p) { return name == p.name; });
  return it == names.end() ? nullptr : &*it;
}

std::string explain_python_name(const PythonName& p) {
  const std::string head = std::string(p.name) + " is train_gpt.py's name; ";
  if (!*p.pgolf_key) return head + "pgolf has no equivalent: " + p.note;
  return head + "pgolf's key is " + p.pgolf_key + (*p.note ? " (" + std::string(p.note) + ")" : "");
}

}  // namespace pgolf
