#include "pgolf/eval/score_lines.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace pgolf {

// What one script printed: labels (nullptr: no such line) and formats.
struct ScoreLines::Compat {
  const char* name;
  const char* roundtrip;       // the non-sliding round trip
  const char* sliding;         // the sliding-window score
  bool sliding_stride;         // its line carries stride:S
  bool sliding_mode_line;      // preceded by "final_eval_mode:sliding_window seq_len:S stride:T batch_seqs:B"
  bool s64_exact;              // "<sliding>_s64_exact" too when EVAL_STRIDE = 64
  const char* serialized;      // "Serialized model <serialized>+<codec>: B bytes"
  const char* total;           // "Total submission size <total>[+<codec>]: B bytes"
  bool total_codec;
};

namespace {

// The five scripts' lines (docs/FROM_PYTHON.md, "Log lines"). The baseline's
// int8+zlib size lines are left out: pgolf's artifact is neither.
const ScoreLines::Compat kCompat[] = {
    {"none", nullptr, nullptr, false, false, false, nullptr, nullptr, false},
    {"baseline", "final_int8_zlib_roundtrip", nullptr, false, false, false, nullptr, nullptr, false},
    {"seed76", nullptr, "final_int6_sliding_window", true, false, false, "int6", "int6", true},
    {"seed219", "final_int6_roundtrip", "final_int6_sliding_window", true, false, true, "int6", "int6", true},
    {"seed286", nullptr, "final_mixed_int5int6_roundtrip", false, true, false, "mixed-int5int6", "mixed-int5int6", false},
    {"seed389", "final_int6_roundtrip", "final_int6_sliding_window", true, false, true, nullptr, nullptr, false},
};

void append(std::vector<std::string>& to, std::vector<std::string> more) {
  to.insert(to.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
}

}  // namespace

const std::vector<std::string>& log_compat_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& c : kCompat) out.emplace_back(c.name);
    return out;
  }();
  return names;
}

ScoreLines::ScoreLines(const std::string& compat, std::int64_t subset_tokens)
    : compat_(nullptr),
      mark_(subset_tokens > 0 ? " subset:first_" + std::to_string(subset_tokens) + "_tokens(not_the_challenge_score)" : "") {
  for (const auto& c : kCompat)
    if (compat == c.name) compat_ = &c;
  if (!compat_) throw std::invalid_argument("LOG_COMPAT='" + compat + "' is not one of the names log_compat_names() lists");
}

std::vector<std::string> ScoreLines::score(const std::string& label, const TimedScore& s, std::int64_t stride) const {
  const std::string stride_field = stride > 0 ? " stride:" + std::to_string(stride) : "";
  char head[256], exact[256];
  std::snprintf(head, sizeof head, "%s val_loss:%.4f val_bpb:%.4f%s eval_time:%.0fms", label.c_str(), s.sums.val_loss(),
                s.sums.val_bpb(), stride_field.c_str(), s.ms);
  std::snprintf(exact, sizeof exact, "%s_exact val_loss:%.8f val_bpb:%.8f", label.c_str(), s.sums.val_loss(), s.sums.val_bpb());
  return {head + mark_, exact + mark_};
}

std::vector<std::string> ScoreLines::roundtrip(const TimedScore& s) const {
  std::vector<std::string> out = score("final_roundtrip", s);
  if (compat_->roundtrip) append(out, score(compat_->roundtrip, s));
  return out;
}

std::vector<std::string> ScoreLines::sliding(const TimedScore& s, std::int64_t stride, std::int64_t seq_len,
                                             std::int64_t batch_seqs) const {
  std::vector<std::string> out = score("final_sliding_window", s, stride);
  if (!compat_->sliding) return out;
  if (compat_->sliding_mode_line)
    out.push_back("final_eval_mode:sliding_window seq_len:" + std::to_string(seq_len) + " stride:" + std::to_string(stride) +
                  " batch_seqs:" + std::to_string(batch_seqs));
  append(out, score(compat_->sliding, s, compat_->sliding_stride ? stride : 0));
  if (compat_->s64_exact && stride == 64) out.push_back(score(std::string(compat_->sliding) + "_s64", s)[1]);
  return out;
}

std::vector<std::string> ScoreLines::sizes(const std::string& ints, const std::string& codec, std::uint64_t artifact_bytes,
                                           std::uint64_t total_bytes, const std::string& path) const {
  const std::string artifact = std::to_string(artifact_bytes) + " bytes", total = std::to_string(total_bytes) + " bytes";
  std::vector<std::string> out = {"Serialized model " + ints + "+" + codec + ": " + artifact + " (" + path + ")",
                                  "Total submission size " + ints + "+" + codec + ": " + total};
  if (compat_->serialized) out.push_back(std::string("Serialized model ") + compat_->serialized + "+" + codec + ": " + artifact);
  if (compat_->total)
    out.push_back(std::string("Total submission size ") + compat_->total + (compat_->total_codec ? "+" + codec : "") + ": " + total);
  return out;
}

std::string int_widths_label(std::vector<int> widths) {
  std::sort(widths.begin(), widths.end());
  widths.erase(std::unique(widths.begin(), widths.end()), widths.end());
  if (widths.empty()) return "fp";
  std::string out = widths.size() > 1 ? "mixed-" : "";
  for (int w : widths) out += "int" + std::to_string(w);
  return out;
}

}  // namespace pgolf
