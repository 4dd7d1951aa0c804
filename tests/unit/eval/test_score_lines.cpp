// The final lines: pgolf's own, and with LOG_COMPAT those of the Python
// script a preset reproduces, read back the way that script's log parsers
// read them (the label, then val_loss:X val_bpb:Y).
#include "pgolf/eval/score_lines.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <regex>

#include "pgolf/config/config.h"

using namespace pgolf;

namespace {

// loss = nll / tokens; bpb = nll / ln 2 / bytes, worked by hand:
// round trip 3000/1000 = 3.0 and 3000/(0.693147180560 * 2000) = 2.16404256;
// sliding 2900/1000 = 2.9 and 2900/(0.693147180560 * 2000) = 2.09190781.
const TimedScore kRoundtrip{{3000, 1000, 2000}, 1234};
const TimedScore kSliding{{2900, 1000, 2000}, 5678};

std::string all(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// What a seed's parser extracts: the val_bpb of the line `label val_loss:X val_bpb:Y`.
std::string parsed_bpb(const std::string& log, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex("(^|\n)" + label + " val_loss:[0-9.]+ val_bpb:([0-9.]+)"))) return "missing";
  return m[2];
}

std::string preset_log(const std::string& preset) {
  const Config c = load_config({std::string(PGOLF_SOURCE_DIR) + "/configs/" + preset}, {},
                               [](const char*) -> const char* { return nullptr; });
  const ScoreLines lines(c.eval.log_compat);
  return all(lines.roundtrip(kRoundtrip)) + all(lines.sliding(kSliding, c.eval.eval_stride, 2048, 32));
}

}  // namespace

TEST(ScoreLines, PgolfsOwnLinesNameWhatTheyHold) {
  const ScoreLines lines("none");
  EXPECT_EQ(all(lines.roundtrip(kRoundtrip)),
            "final_roundtrip val_loss:3.0000 val_bpb:2.1640 eval_time:1234ms\n"
            "final_roundtrip_exact val_loss:3.00000000 val_bpb:2.16404256\n");
  EXPECT_EQ(all(lines.sliding(kSliding, 64, 2048, 32)),
            "final_sliding_window val_loss:2.9000 val_bpb:2.0919 stride:64 eval_time:5678ms\n"
            "final_sliding_window_exact val_loss:2.90000000 val_bpb:2.09190781\n");
  EXPECT_EQ(all(lines.sizes("mixed-int5int6", "brotli", 100, 150, "run/final_model.pgolf")),
            "Serialized model mixed-int5int6+brotli: 100 bytes (run/final_model.pgolf)\n"
            "Total submission size mixed-int5int6+brotli: 150 bytes\n");
}

TEST(ScoreLines, EachScriptsLinesCarryWhatTheyCarriedThere) {
  // The baseline's final_int8_zlib_roundtrip: the non-sliding round trip.
  const std::string baseline = all(ScoreLines("baseline").roundtrip(kRoundtrip)) +
                               all(ScoreLines("baseline").sliding(kSliding, 64, 1024, 32));
  EXPECT_EQ(parsed_bpb(baseline, "final_int8_zlib_roundtrip_exact"), "2.16404256");
  EXPECT_EQ(parsed_bpb(baseline, "final_int8_zlib_roundtrip"), "2.1640");
  // #286 named its sliding-window score a round trip, after a mode line.
  const ScoreLines s286("seed286");
  EXPECT_EQ(all(s286.sliding(kSliding, 64, 2048, 32)),
            "final_sliding_window val_loss:2.9000 val_bpb:2.0919 stride:64 eval_time:5678ms\n"
            "final_sliding_window_exact val_loss:2.90000000 val_bpb:2.09190781\n"
            "final_eval_mode:sliding_window seq_len:2048 stride:64 batch_seqs:32\n"
            "final_mixed_int5int6_roundtrip val_loss:2.9000 val_bpb:2.0919 eval_time:5678ms\n"
            "final_mixed_int5int6_roundtrip_exact val_loss:2.90000000 val_bpb:2.09190781\n");
  EXPECT_EQ(all(s286.sizes("mixed-int5int6int8", "zstd", 100, 150, "f")),
            "Serialized model mixed-int5int6int8+zstd: 100 bytes (f)\n"
            "Total submission size mixed-int5int6int8+zstd: 150 bytes\n"
            "Serialized model mixed-int5int6+zstd: 100 bytes\n"
            "Total submission size mixed-int5int6: 150 bytes\n");
  // #219's s64 line only copies the score when the stride is 64 (no second evaluation).
  EXPECT_EQ(parsed_bpb(all(ScoreLines("seed219").sliding(kSliding, 32, 2048, 32)), "final_int6_sliding_window_s64_exact"),
            "missing");
  EXPECT_NE(all(ScoreLines("seed219").sliding(kSliding, 32, 2048, 32)).find("final_int6_sliding_window val_loss:2.9000 val_bpb:2.0919 stride:32 "),
            std::string::npos);
  EXPECT_THROW(ScoreLines("seed1"), std::invalid_argument);
}

TEST(ScoreLines, EachSeedPresetsLogReadsAsItsScriptsLog) {
  const std::string s76 = preset_log("seed76_12l.env");
  EXPECT_EQ(parsed_bpb(s76, "final_int6_sliding_window_exact"), "2.09190781");
  for (const char* preset : {"seed219_12l_int5_int6.env", "seed389_11l_int5all_xsa_ema.env"}) {
    const std::string log = preset_log(preset);
    EXPECT_EQ(parsed_bpb(log, "final_int6_roundtrip_exact"), "2.16404256") << preset;
    EXPECT_EQ(parsed_bpb(log, "final_int6_sliding_window_exact"), "2.09190781") << preset;
    EXPECT_EQ(parsed_bpb(log, "final_int6_sliding_window_s64_exact"), "2.09190781") << preset;
  }
  EXPECT_EQ(parsed_bpb(preset_log("seed286_10l_late_qat.env"), "final_mixed_int5int6_roundtrip_exact"), "2.09190781");
  // The default prints the baseline's line, with the baseline's meaning.
  const std::string dflt = all(ScoreLines(Config{}.eval.log_compat).roundtrip(kRoundtrip));
  EXPECT_EQ(parsed_bpb(dflt, "final_int8_zlib_roundtrip_exact"), "2.16404256");
}

TEST(ScoreLines, ASubsetScoreSaysSoOnEveryLine) {
  const ScoreLines lines("seed76", 5000);
  for (const std::string& l : lines.sliding(kSliding, 64, 1024, 32))
    EXPECT_NE(l.find(" subset:first_5000_tokens(not_the_challenge_score)"), std::string::npos) << l;
  for (const std::string& l : lines.roundtrip(kRoundtrip))
    EXPECT_NE(l.find(" subset:first_5000_tokens(not_the_challenge_score)"), std::string::npos) << l;
}

TEST(ScoreLines, IntWidthsLabel) {
  EXPECT_EQ(int_widths_label({6, 6, 6}), "int6");
  EXPECT_EQ(int_widths_label({8, 5, 6, 5}), "mixed-int5int6int8");
  EXPECT_EQ(int_widths_label({}), "fp");
}

// docs/FROM_PYTHON.md ("Log lines") names every line each LOG_COMPAT prints.
TEST(ScoreLines, TheDocsTableNamesEveryLine) {
  std::ifstream in(std::string(PGOLF_SOURCE_DIR) + "/docs/FROM_PYTHON.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto from = doc.find("## Log lines");
  ASSERT_NE(from, std::string::npos);
  const std::string section = doc.substr(from, doc.find("\n## ", from + 1) - from);
  for (const std::string& compat : log_compat_names()) {
    const ScoreLines lines(compat);
    std::vector<std::string> printed = lines.roundtrip(kRoundtrip);
    for (std::string& l : lines.sliding(kSliding, 64, 2048, 32)) printed.push_back(std::move(l));
    for (const std::string& line : printed) {
      std::string label = line.substr(0, line.find(' '));
      if (label.size() > 6 && label.compare(label.size() - 6, 6, "_exact") == 0 && label.find("_s64") == std::string::npos)
        label.resize(label.size() - 6);
      if (!label.empty()) EXPECT_NE(section.find("`" + label), std::string::npos) << compat << ": " << label;
    }
  }
}
