// The lines a run's final results print under. pgolf's own lines say what
// they hold:
//   final_roundtrip[_exact]       the artifact read back, scored on
//                                 non-overlapping windows of EVAL_SEQ_LEN
//   final_sliding_window[_exact]  the artifact read back, scored with sliding
//                                 windows (EVAL_STRIDE): the challenge's score
//   Serialized model <ints>+<codec>: B bytes, Total submission size ...
// LOG_COMPAT adds the lines of the script a preset reproduces, with the
// meaning and format that script gave them, so its log parsers read a pgolf
// log: baseline (final_int8_zlib_roundtrip, the non-sliding round trip),
// seed76, seed219, seed286, seed389 (docs/FROM_PYTHON.md has the table).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pgolf/eval/eval.h"

namespace pgolf {

// The LOG_COMPAT values, in the order docs list them.
const std::vector<std::string>& log_compat_names();

// One score: the sums and the wall time that made them.
struct TimedScore {
  EvalSums sums;
  double ms = 0;
};

class ScoreLines {
 public:
  // The plan of LOG_COMPAT `compat` (one of log_compat_names()). With
  // `subset_tokens` > 0 (EVAL_TOKENS_LIMIT) every score line ends with
  // " subset:first_N_tokens(not_the_challenge_score)".
  explicit ScoreLines(const std::string& compat, std::int64_t subset_tokens = 0);

  // "<label> val_loss:X val_bpb:Y[ stride:S] eval_time:Mms" and
  // "<label>_exact val_loss:X val_bpb:Y" at full precision: the shape of
  // every score line, pgolf's and the scripts'.
  std::vector<std::string> score(const std::string& label, const TimedScore& s, std::int64_t stride = 0) const;

  // The non-sliding round trip, pgolf's lines first.
  std::vector<std::string> roundtrip(const TimedScore& s) const;
  // The sliding-window score; `seq_len` and `batch_seqs` for the scripts that
  // print their evaluation mode.
  std::vector<std::string> sliding(const TimedScore& s, std::int64_t stride, std::int64_t seq_len,
                                   std::int64_t batch_seqs) const;
  // The size lines: `ints` names the integer widths stored (int_widths_label),
  // `codec` the artifact's compressor.
  std::vector<std::string> sizes(const std::string& ints, const std::string& codec, std::uint64_t artifact_bytes,
                                 std::uint64_t total_bytes, const std::string& path) const;

 public:
  struct Compat;  // one script's lines (score_lines.cpp)

 private:
  const Compat* compat_;
  std::string mark_;
};

// "int6" when every integer-quantised tensor is stored with 6 bits,
// "mixed-int5int6int8" for several widths (ascending), "fp" for none.
std::string int_widths_label(std::vector<int> widths);

}  // namespace pgolf
