#include "pgolf/config/values.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace pgolf {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::stringstream in{std::string(text)};
  for (std::string part; std::getline(in, part, sep);) out.push_back(part);
  return out;
}

// An enumeration written as one of a few words.
template <class E, std::size_t N>
void parse_choice(std::string_view text, E& out, const std::pair<E, const char*> (&names)[N]) {
  std::string all;
  for (const auto& [value, name] : names) {
    if (text == name) {
      out = value;
      return;
    }
    all += (all.empty() ? "" : ", ") + std::string(name);
  }
  throw std::invalid_argument("is not one of " + all);
}

template <class E, std::size_t N>
std::string choice_name(E v, const std::pair<E, const char*> (&names)[N]) {
  for (const auto& [value, name] : names)
    if (value == v) return name;
  throw std::logic_error("an enumeration value without a name");
}

constexpr std::pair<MlpActivation, const char*> kActivations[] = {{MlpActivation::Relu2, "relu2"},
                                                                  {MlpActivation::LeakyRelu2, "leaky_relu2"}};
constexpr std::pair<LrSchedule, const char*> kSchedules[] = {{LrSchedule::Warmdown, "warmdown"},
                                                             {LrSchedule::HoldDecay, "hold_decay"}};
constexpr std::pair<SwaStepIndex, const char*> kStepIndices[] = {{SwaStepIndex::Done, "done"}, {SwaStepIndex::Taken, "taken"}};
constexpr std::pair<AdapterSite, const char*> kSites[] = {{AdapterSite::Q, "q"}, {AdapterSite::K, "k"},
                                                          {AdapterSite::V, "v"}, {AdapterSite::O, "o"},
                                                          {AdapterSite::Mlp, "mlp"}, {AdapterSite::Head, "head"}};

}  // namespace

std::vector<std::int64_t> block_order(std::int64_t layers, const LoopRange& loop, std::int64_t repeats) {
  std::vector<std::int64_t> order;
  const std::int64_t first = loop.on() ? loop.first : layers, last = loop.on() ? loop.last : layers - 1;
  for (std::int64_t i = 0; i < first; ++i) order.push_back(i);
  for (std::int64_t r = 0; r < repeats; ++r)
    for (std::int64_t i = first; i <= last; ++i) order.push_back(i);
  for (std::int64_t i = last + 1; i < layers; ++i) order.push_back(i);
  return order;
}

void parse_value(std::string_view text, std::int64_t& out) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) throw std::invalid_argument("is not an integer");
  out = v;
}

void parse_value(std::string_view text, double& out) {
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  const double v = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) throw std::invalid_argument("is not a finite number");
  // Underflow (1e-320 is subnormal, 1e-400 becomes 0) loses the value written.
  if (errno == ERANGE || std::fpclassify(v) == FP_SUBNORMAL)
    throw std::invalid_argument("is not a number within the range of a double (magnitude 0 or 2.3e-308 to 1.7e308)");
  out = v;
}

void parse_value(std::string_view text, bool& out) {
  const std::string s = lower(text);
  if (s == "1" || s == "true" || s == "yes" || s == "on") out = true;
  else if (s == "0" || s == "false" || s == "no" || s == "off") out = false;
  else throw std::invalid_argument("is not a boolean (1/0, true/false, yes/no, on/off)");
}

void parse_value(std::string_view text, std::string& out) { out = std::string(text); }

void parse_value(std::string_view text, LoopRange& out) {
  if (text.empty()) {
    out = {};
    return;
  }
  auto number = [&](std::string_view s) {
    std::int64_t v = -1;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 0)
      throw std::invalid_argument("must be A-B with layer numbers 0 <= A <= B (e.g. 3-5), or empty for no loop");
    return v;
  };
  const auto dash = text.find('-');
  if (dash == std::string_view::npos) number("");
  const LoopRange r{number(text.substr(0, dash)), number(text.substr(dash + 1))};
  if (r.first > r.last) throw std::invalid_argument("must be A-B with A <= B");
  out = r;
}

void parse_value(std::string_view text, MlpActivation& out) { parse_choice(text, out, kActivations); }
void parse_value(std::string_view text, LrSchedule& out) { parse_choice(text, out, kSchedules); }
void parse_value(std::string_view text, SwaStepIndex& out) { parse_choice(text, out, kStepIndices); }
void parse_value(std::string_view text, Codec& out) {
  const auto c = parse_codec(std::string(text));
  if (!c) throw std::invalid_argument("is not one of zstd, xz, brotli");
  out = *c;
}

void parse_value(std::string_view text, std::vector<AdapterSite>& out) {
  std::vector<AdapterSite> sites;
  for (const std::string& item : split(text, ',')) {
    AdapterSite s{};
    try {
      parse_choice(item, s, kSites);
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument("names an unknown adapter site '" + item + "' (use q, k, v, o, mlp, head)");
    }
    sites.push_back(s);
  }
  out = sites;
}

void parse_value(std::string_view text, NsSchedule& out) {
  if (text == "classic" || text == "polar_express") {
    out = {text == "classic" ? NsSchedule::Classic : NsSchedule::PolarExpress, {}};
    return;
  }
  const std::string spec(text);
  if (!spec.empty() && spec.back() == ';') throw std::invalid_argument("ends in ';'");
  NsSchedule s{NsSchedule::Tuples, {}};
  for (const std::string& tuple : split(spec, ';')) {
    std::vector<double> v;
    for (const std::string& f : split(tuple, ',')) {
      double x = 0;
      try {
        parse_value(f, x);
      } catch (const std::invalid_argument&) {
        throw std::invalid_argument("holds '" + f + "' in '" + tuple + "', not a number");
      }
      v.push_back(x);
    }
    if (v.size() != 3) throw std::invalid_argument("holds '" + tuple + "', not three numbers a,b,c");
    s.tuples.push_back({v[0], v[1], v[2]});
  }
  if (s.tuples.empty()) throw std::invalid_argument("must be classic, polar_express or tuples a,b,c;a,b,c;...");
  out = s;
}

void parse_value(std::string_view text, TensorPlan& out) { out = parse_tensor_plan(text); }

void parse_value(std::string_view text, std::optional<RowQuantizer>& out) {
  if (text.empty()) {
    out.reset();
    return;
  }
  const TensorPlan p = parse_tensor_plan(text);
  if (p.scheme != Scheme::IntRow) throw std::invalid_argument("must be an int<B> quantiser (or empty)");
  out = p.quant;
}

void parse_value(std::string_view text, std::vector<std::int64_t>& out) {
  std::vector<std::int64_t> counts;
  for (const std::string& item : split(text, ',')) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() || v <= 0)
      throw std::invalid_argument("holds '" + item + "', not a positive document count (write e.g. 833,1666,2500)");
    if (!counts.empty() && v <= counts.back())
      throw std::invalid_argument("must increase, got " + std::to_string(counts.back()) + " then " + item);
    counts.push_back(v);
  }
  out = counts;
}

void parse_value(std::string_view text, std::vector<std::string>& out) {
  out.clear();
  for (std::string& item : split(text, ','))
    if (!item.empty()) out.push_back(std::move(item));
}

std::string shortest_decimal(double v) {
  char buf[64];
  // Whole numbers as integers (600, 10000, not 6e+02, 1e+04) while a double holds them exactly.
  const bool whole = std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15;
  const auto r = whole ? std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v)) : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string format_value(std::int64_t v) { return std::to_string(v); }
std::string format_value(double v) { return shortest_decimal(v); }
std::string format_value(bool v) { return v ? "1" : "0"; }
std::string format_value(const std::string& v) { return v; }

std::string format_value(const LoopRange& v) {
  return v.on() ? std::to_string(v.first) + "-" + std::to_string(v.last) : "";
}

std::string format_value(MlpActivation v) { return choice_name(v, kActivations); }
std::string format_value(LrSchedule v) { return choice_name(v, kSchedules); }
std::string format_value(SwaStepIndex v) { return choice_name(v, kStepIndices); }
std::string format_value(Codec v) { return codec_name(v); }

std::string format_value(const std::vector<AdapterSite>& v) {
  std::string out;
  for (AdapterSite s : v) out += (out.empty() ? "" : ",") + choice_name(s, kSites);
  return out;
}

std::string format_value(const NsSchedule& v) {
  if (v.kind == NsSchedule::Classic) return "classic";
  if (v.kind == NsSchedule::PolarExpress) return "polar_express";
  std::string out;
  for (const NsCoefficients& t : v.tuples)
    out += (out.empty() ? "" : ";") + shortest_decimal(t.a) + "," + shortest_decimal(t.b) + "," + shortest_decimal(t.c);
  return out;
}

std::string format_value(const TensorPlan& v) { return format_tensor_plan(v); }

std::string format_value(const std::optional<RowQuantizer>& v) {
  return v ? format_tensor_plan({Scheme::IntRow, *v}) : "";
}

std::string format_value(const std::vector<std::int64_t>& v) {
  std::string out;
  for (std::int64_t n : v) out += (out.empty() ? "" : ",") + std::to_string(n);
  return out;
}

std::string format_value(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace pgolf
