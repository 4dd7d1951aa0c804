// The typed values of the structured keys: each text reads into its value,
// writes back to the same text, and anything else says what it must be.
#include <gtest/gtest.h>

#include "pgolf/config/config.h"

namespace pgolf {
namespace {

template <class T>
T parsed(const char* text) {
  T v{};
  parse_value(text, v);
  return v;
}

// Every text reads back to itself.
template <class T>
void round_trips(std::initializer_list<const char*> texts) {
  for (const char* t : texts) EXPECT_EQ(format_value(parsed<T>(t)), t);
}

template <class T>
void refuses(std::initializer_list<const char*> texts, const char* says) {
  for (const char* t : texts) {
    try {
      parsed<T>(t);
      ADD_FAILURE() << "accepted '" << t << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << t << ": " << e.what();
    }
  }
}

TEST(ConfigValues, LoopLayersAndTheBlockOrder) {
  EXPECT_EQ(parsed<LoopRange>("3-5"), (LoopRange{3, 5}));
  EXPECT_FALSE(parsed<LoopRange>("").on());
  round_trips<LoopRange>({"3-5", "0-0", ""});
  refuses<LoopRange>({"3", "5-3", "a-b", "-1-2", "3-", "3-5x"}, "A-B");
  EXPECT_EQ(block_order(11, {3, 5}, 3),
            (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 3, 4, 5, 3, 4, 5, 6, 7, 8, 9, 10}));  // the record's 17
  EXPECT_EQ(block_order(4, {}, 1), (std::vector<std::int64_t>{0, 1, 2, 3}));
}

TEST(ConfigValues, NewtonSchulzSchedules) {
  EXPECT_EQ(parsed<NsSchedule>("classic").kind, NsSchedule::Classic);
  EXPECT_EQ(parsed<NsSchedule>("polar_express").kind, NsSchedule::PolarExpress);
  const NsSchedule two = parsed<NsSchedule>("3,-4.5,2;1.5,-0.5,0");
  ASSERT_EQ(two.tuples.size(), 2u);
  EXPECT_DOUBLE_EQ(two.tuples[1].a, 1.5);
  EXPECT_DOUBLE_EQ(two.tuples[0].b, -4.5);
  round_trips<NsSchedule>({"classic", "polar_express", "3,-4.5,2;1.5,-0.5,0"});
  refuses<NsSchedule>({"", "fast", "1,2", "1,2,3,4"}, "");
  refuses<NsSchedule>({"1,x,3", "1,2,nan"}, "not a number");
  refuses<NsSchedule>({"1,2,3;"}, "ends in ';'");
}

TEST(ConfigValues, ChoicesNameTheWordsAllowed) {
  EXPECT_EQ(parsed<MlpActivation>("leaky_relu2"), MlpActivation::LeakyRelu2);
  EXPECT_EQ(parsed<LrSchedule>("hold_decay"), LrSchedule::HoldDecay);
  EXPECT_EQ(parsed<SwaStepIndex>("done"), SwaStepIndex::Done);
  EXPECT_EQ(parsed<Codec>("zstd"), Codec::Zstd);
  round_trips<MlpActivation>({"relu2", "leaky_relu2"});
  round_trips<LrSchedule>({"warmdown", "hold_decay"});
  round_trips<SwaStepIndex>({"done", "taken"});
  round_trips<Codec>({"zstd", "xz", "brotli"});
  refuses<MlpActivation>({"relu", ""}, "relu2, leaky_relu2");
  refuses<SwaStepIndex>({"after"}, "done, taken");
  refuses<Codec>({"gzip"}, "zstd, xz, brotli");
}

TEST(ConfigValues, ListsOfSitesAndDocumentCounts) {
  EXPECT_EQ(parsed<std::vector<AdapterSite>>("head,q"), (std::vector<AdapterSite>{AdapterSite::Head, AdapterSite::Q}));
  round_trips<std::vector<AdapterSite>>({"q,k,v,o,mlp,head", "head", ""});
  refuses<std::vector<AdapterSite>>({"q,up", "q,kk"}, "unknown adapter site");
  EXPECT_EQ(parsed<std::vector<std::int64_t>>("833,1666,2500"), (std::vector<std::int64_t>{833, 1666, 2500}));
  EXPECT_TRUE(parsed<std::vector<std::int64_t>>("").empty());
  round_trips<std::vector<std::int64_t>>({"833,1666,2500", ""});
  refuses<std::vector<std::int64_t>>({"10,5"}, "must increase");
  refuses<std::vector<std::int64_t>>({"10,x", "0"}, "positive document count");
  EXPECT_EQ(parsed<std::vector<std::string>>("a,,b"), (std::vector<std::string>{"a", "b"}));
}

TEST(ConfigValues, QatQuantiserIsAnIntegerPlanOrNothing) {
  EXPECT_FALSE(parsed<std::optional<RowQuantizer>>("").has_value());
  EXPECT_EQ(parsed<std::optional<RowQuantizer>>("int5,floor")->bits, 5);
  round_trips<std::optional<RowQuantizer>>({"", "int6,floor,sym"});
  refuses<std::optional<RowQuantizer>>({"fp16"}, "int<B>");
}

// A structured key's fault is an error at the moment it is set, naming the
// key, the text and where it came from.
TEST(ConfigValues, AStructuredKeyIsCheckedWhenSet) {
  Config c;
  try {
    apply_assignment(c, "TTT_TARGETS=q,kk", "--set TTT_TARGETS=q,kk");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--set TTT_TARGETS=q,kk: TTT_TARGETS='q,kk'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'kk'"), std::string::npos) << e.what();
  }
  apply_assignment(c, "LOOP_LAYERS=2-4", "x");
  EXPECT_EQ(c.model.loop_layers, (LoopRange{2, 4}));
  EXPECT_EQ(get_config_value(c, *find_config_key("LOOP_LAYERS")), "2-4");
}

}  // namespace
}  // namespace pgolf

TEST(Values, NumbersPrintExactlyAndReadBack) {
  EXPECT_EQ(pgolf::shortest_decimal(600), "600");
  EXPECT_EQ(pgolf::shortest_decimal(10000), "10000");
  EXPECT_EQ(pgolf::shortest_decimal(30), "30");
  EXPECT_EQ(pgolf::shortest_decimal(0.025), "0.025");
  EXPECT_EQ(pgolf::shortest_decimal(1e-8), "1e-08");
  EXPECT_EQ(pgolf::shortest_decimal(-1.5), "-1.5");
  for (double v : {600.0, 0.1, 1.0 / 3.0, 0.9999984, 2.5e20, 1e-8, 123456789.125}) {
    double back = 0;
    pgolf::parse_value(pgolf::shortest_decimal(v), back);
    EXPECT_EQ(back, v) << pgolf::shortest_decimal(v);
  }
}
