#include "pgolf/export/tensor_plan.h"

#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "pgolf/config/values.h"

namespace pgolf {
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) out.push_back(part);
  return out;
}

}  // namespace

TensorPlan parse_tensor_plan(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("is not a valid plan: " + why +
                       " (expected fp16, fp32 or int<2..8> with options q=<quantile>, k=<SDClip std multiple>, floor, sym, gptq; e.g. int6,floor)");
  };
  const auto parts = split(std::string(text));
  if (parts.empty()) throw bad("empty");
  TensorPlan plan;
  if (parts[0] == "fp16" || parts[0] == "fp32") {
    if (parts.size() > 1) throw bad("fp16/fp32 take no options");
    plan.scheme = parts[0] == "fp16" ? Scheme::Fp16 : Scheme::Fp32;
    return plan;
  }
  if (parts[0].size() != 4 || parts[0].compare(0, 3, "int") != 0 || parts[0][3] < '2' || parts[0][3] > '8')
    throw bad("unknown scheme '" + parts[0] + "'");
  plan.scheme = Scheme::IntRow;
  plan.quant.bits = parts[0][3] - '0';
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string& o = parts[i];
    if (o == "floor") {
      plan.quant.floor = true;
    } else if (o == "gptq") {
      plan.quant.gptq = true;
    } else if (o == "sym") {
      plan.quant.symmetric = true;
    } else if (o.compare(0, 2, "k=") == 0) {
      char* end = nullptr;
      const double k = std::strtod(o.c_str() + 2, &end);
      if (o.size() == 2 || *end != '\0' || !(k > 0.0 && k < 1e6)) throw bad("SDClip k must be a positive number");
      plan.quant.sd_k = k;
    } else if (o.compare(0, 2, "q=") == 0) {
      char* end = nullptr;
      const double q = std::strtod(o.c_str() + 2, &end);
      if (o.size() == 2 || *end != '\0' || !(q > 0.0 && q <= 1.0)) throw bad("clip quantile must be in (0, 1]");
      plan.quant.clip_q = q;
    } else {
      throw bad("unknown option '" + o + "'");
    }
  }
  return plan;
}

std::string format_tensor_plan(const TensorPlan& plan) {
  if (plan.scheme == Scheme::Fp16) return "fp16";
  if (plan.scheme == Scheme::Fp32) return "fp32";
  std::ostringstream out;
  out << "int" << plan.quant.bits;
  if (plan.quant.clip_q != 1.0) out << ",q=" << shortest_decimal(plan.quant.clip_q);
  if (plan.quant.sd_k > 0) out << ",k=" << shortest_decimal(plan.quant.sd_k);
  if (plan.quant.floor) out << ",floor";
  if (plan.quant.symmetric) out << ",sym";
  if (plan.quant.gptq) out << ",gptq";
  return out.str();
}

}  // namespace pgolf
