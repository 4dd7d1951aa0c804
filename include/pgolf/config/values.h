// The typed values of the structured configuration keys. Each is parsed once,
// when its key is set (config file, environment, --set), into the type its
// owner uses, and written back in the same syntax (config.env, `pgolf config`).
// Every parse_value throws std::invalid_argument saying what the text must be;
// the caller adds the key and where the text came from.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgolf/core/codec.h"
#include "pgolf/export/tensor_plan.h"

namespace pgolf {

// LOOP_LAYERS "A-B": physical layers A..B (0 <= A <= B) run LOOP_REPEATS
// times in a row; "" = no loop.
struct LoopRange {
  std::int64_t first = -1, last = -1;
  bool on() const { return first >= 0; }
  bool operator==(const LoopRange& o) const { return first == o.first && last == o.last; }
};
// The order in which the blocks run: 0..L-1, with the loop's layers run
// `repeats` times in a row, e.g. L = 11, 3-5, 3 times: 0,1,2,3,4,5,3,4,5,3,4,5,6,...,10.
std::vector<std::int64_t> block_order(std::int64_t layers, const LoopRange& loop, std::int64_t repeats);

// MLP_ACTIVATION: relu(x)^2 (the seeds) or leaky_relu(x, slope)^2 (the 1.0611 record).
enum class MlpActivation { Relu2, LeakyRelu2 };
// LR_SCHEDULE (schedule.h).
enum class LrSchedule { Warmdown, HoldDecay };
// SWA_STEP_INDEX (averaging.h): which step count SWA_EVERY divides.
enum class SwaStepIndex { Done, Taken };
// TTT_TARGETS: where test-time adapters attach (lora.h).
enum class AdapterSite { Q, K, V, O, Mlp, Head };

// One Newton-Schulz iteration: A = X X^T;  X = a X + (b A + c A A) X.
struct NsCoefficients {
  double a, b, c;
  bool operator==(const NsCoefficients& o) const { return a == o.a && b == o.b && c == o.c; }
};
// MUON_NS_COEFFS: "classic" (MUON_BACKEND_STEPS iterations of the classic
// tuple), "polar_express" (the record's five tuples) or explicit tuples
// "a,b,c;a,b,c;..." (one per iteration). optim.h expands it.
struct NsSchedule {
  enum Kind { Classic, PolarExpress, Tuples } kind = Classic;
  std::vector<NsCoefficients> tuples;  // Tuples only
};

void parse_value(std::string_view text, std::int64_t& out);
void parse_value(std::string_view text, double& out);
void parse_value(std::string_view text, bool& out);
void parse_value(std::string_view text, std::string& out);
void parse_value(std::string_view text, LoopRange& out);
void parse_value(std::string_view text, MlpActivation& out);
void parse_value(std::string_view text, LrSchedule& out);
void parse_value(std::string_view text, SwaStepIndex& out);
void parse_value(std::string_view text, std::vector<AdapterSite>& out);  // "q,k,v,o,mlp,head", a subset
void parse_value(std::string_view text, NsSchedule& out);
void parse_value(std::string_view text, Codec& out);
void parse_value(std::string_view text, TensorPlan& out);
void parse_value(std::string_view text, std::optional<RowQuantizer>& out);   // "" or an int<B> plan
void parse_value(std::string_view text, std::vector<std::int64_t>& out);     // "833,1666": increasing, positive; "" = none
void parse_value(std::string_view text, std::vector<std::string>& out);      // comma-separated, empty items dropped

// The shortest decimal text that reads back to exactly `v`.
std::string shortest_decimal(double v);

std::string format_value(std::int64_t v);
std::string format_value(double v);
std::string format_value(bool v);
std::string format_value(const std::string& v);
std::string format_value(const LoopRange& v);
std::string format_value(MlpActivation v);
std::string format_value(LrSchedule v);
std::string format_value(SwaStepIndex v);
std::string format_value(const std::vector<AdapterSite>& v);
std::string format_value(const NsSchedule& v);
std::string format_value(Codec v);
std::string format_value(const TensorPlan& v);
std::string format_value(const std::optional<RowQuantizer>& v);
std::string format_value(const std::vector<std::int64_t>& v);
std::string format_value(const std::vector<std::string>& v);

// The value types as `pgolf config --list` names them.
inline const char* value_type_name(const std::int64_t*) { return "int"; }
inline const char* value_type_name(const double*) { return "float"; }
inline const char* value_type_name(const bool*) { return "bool"; }
template <class T>
const char* value_type_name(const T*) {
  return "string";
}

}  // namespace pgolf
