#include "pgolf/app/compare.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "pgolf/core/io.h"
#include "pgolf/core/text.h"
#include "pgolf/eval/stats.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The lines of a text file, trimmed, without the empty ones.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    const std::string_view line = trim(text.substr(0, end));
    if (!line.empty()) lines.push_back(line);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return lines;
}

// SEED in a config.env (as format_config writes it, or edited by hand: an
// `export ` prefix, quotes, a `#` comment after white space); "?" when the
// file or the key is missing.
std::string read_seed(const fs::path& config_env) {
  std::error_code ec;
  if (!fs::is_regular_file(config_env, ec)) return "?";
  const std::string text = read_file(config_env.string());
  std::string seed = "?";
  for (std::string_view line : lines_of(text)) {
    if (line.substr(0, 7) == "export ") line = trim(line.substr(7));
    if (line.substr(0, 5) != "SEED=") continue;
    std::string_view value = line.substr(5);
    for (std::size_t i = 1; i < value.size(); ++i)
      if (value[i] == '#' && std::isspace(static_cast<unsigned char>(value[i - 1]))) {
        value = value.substr(0, i);
        break;
      }
    value = trim(value);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    seed = value.empty() ? "?" : printable(value);  // the last assignment wins, as when the file is loaded
  }
  return seed;
}

// The "event" field of a metrics.jsonl object; "" when it has none.
std::string event_name(const nlohmann::ordered_json& event) {
  const auto it = event.find("event");
  return it != event.end() && it->is_string() ? it->get<std::string>() : "";
}

// How a run without a final event ended, as far as its last event tells.
std::string how_it_ended(const nlohmann::ordered_json& last) {
  if (last.is_null()) return "metrics.jsonl holds no event yet: the run has not logged anything";
  const std::string event = event_name(last);
  auto step = [&] {
    const auto it = last.find("step");
    if (it == last.end() || !it->is_number()) return std::string();
    char buf[64];
    std::snprintf(buf, sizeof buf, " at step %.0f", it->get<double>());
    return std::string(buf);
  };
  if (event == "error") {
    const auto message = last.find("message");
    return "it failed: " + (message != last.end() && message->is_string() ? message->get<std::string>() : "(no message)");
  }
  if (event == "stop") return "a signal stopped it" + step() + "; `pgolf train --resume` continues it";
  return "its last event is '" + event + "'" + step() + ": it is still running, or it was killed";
}

double final_number(const nlohmann::ordered_json& final_event, const char* key, const std::string& where) {
  const auto it = final_event.find(key);
  if (it == final_event.end() || !it->is_number())
    throw std::runtime_error(where + ": the final event of metrics.jsonl has no number \"" + key + "\"" +
                             (it != final_event.end() && it->is_null() ? " (it is null: the run's value was not finite)"
                                                                       : " (was it written by `pgolf train`?)"));
  return it->get<double>();
}

}  // namespace

RunResult read_run_result(const std::string& path) {
  std::error_code ec;
  const fs::path given(path);
  const bool folder = fs::is_directory(given, ec);
  if (!folder && !fs::is_regular_file(given, ec))
    throw std::runtime_error("'" + path + "' does not exist: give a run folder of `pgolf train` or its metrics.jsonl");
  const fs::path metrics = folder ? given / "metrics.jsonl" : given;
  if (folder && !fs::is_regular_file(metrics, ec))
    throw std::runtime_error("'" + path + "' has no metrics.jsonl: not a run folder of `pgolf train`, or the run has not started");
  const std::string where = "'" + path + "'";
  const std::string text = read_file(metrics.string());
  nlohmann::ordered_json final_event, compliance, provenance, last;
  for (std::string_view line : lines_of(text)) {
    nlohmann::ordered_json event = nlohmann::ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!event.is_object()) continue;
    const std::string name = event_name(event);
    if (name == "final") final_event = event;
    if (name == "compliance") compliance = event;
    if (name == "provenance") provenance = event;
    last = std::move(event);
  }
  if (final_event.is_null())
    throw std::runtime_error(where + ": the run did not finish: metrics.jsonl has no final event (" + how_it_ended(last) + ")");
  if (const auto subset = final_event.find("subset_tokens"); subset != final_event.end() && subset->is_number() &&
                                                             subset->get<double>() > 0)
    throw std::runtime_error(where + ": the run was scored on the first " + std::to_string(subset->get<std::int64_t>()) +
                             " validation tokens only (EVAL_TOKENS_LIMIT): not a challenge score; compare full runs");
  RunResult r;
  r.name = path;
  r.seed = read_seed((folder ? given : given.parent_path()) / "config.env");
  r.val_loss = final_number(final_event, "val_loss", where);
  r.val_bpb = final_number(final_event, "val_bpb", where);
  r.train_time_ms = final_number(final_event, "train_time_ms", where);
  r.steps = std::llround(final_number(final_event, "steps", where));
  r.total_bytes = std::llround(final_number(final_event, "total_bytes", where));
  r.artifact_bytes = std::llround(final_number(final_event, "artifact_bytes", where));
  if (const auto eval = final_event.find("eval_ms"); eval != final_event.end() && eval->is_number()) r.eval_ms = eval->get<double>();
  for (auto it = compliance.begin(); compliance.is_object() && it != compliance.end(); ++it)
    if (it.key() != "event" && it->is_string()) r.compliance.emplace_back(it.key(), it->get<std::string>());
  for (auto it = provenance.begin(); provenance.is_object() && it != provenance.end(); ++it)
    if (it->is_string()) r.provenance[it.key()] = it->get<std::string>();
  return r;
}

namespace {

SampleSummary summary_of(const std::vector<RunResult>& runs, double RunResult::*field) {
  std::vector<double> values;
  for (const RunResult& r : runs) values.push_back(r.*field);
  return summarize(values);
}

std::string format_set(const char* label, const std::vector<RunResult>& runs, int name_width) {
  std::string out = strprintf("set %s: %zu run%s\n", label, runs.size(), runs.size() == 1 ? "" : "s");
  out += strprintf("  %-*s %8s %10s %10s %8s %9s %12s\n", name_width, "run", "seed", "val_loss", "val_bpb", "steps",
                   "train_s", "total_bytes");
  for (const RunResult& r : runs)
    out += strprintf("  %-*s %8s %10.6f %10.6f %8lld %9.1f %12lld\n", name_width, r.name.c_str(), r.seed.c_str(), r.val_loss,
                     r.val_bpb, static_cast<long long>(r.steps), r.train_time_ms / 1000, static_cast<long long>(r.total_bytes));
  const SampleSummary loss = summary_of(runs, &RunResult::val_loss), bpb = summary_of(runs, &RunResult::val_bpb);
  auto std_text = [](const SampleSummary& s) { return s.n < 2 ? std::string("n/a") : strprintf("%.6f", s.std); };
  out += strprintf("  %s: n=%zu val_loss mean %.6f std %s, val_bpb mean %.6f std %s\n", label, loss.n, loss.mean,
                   std_text(loss).c_str(), bpb.mean, std_text(bpb).c_str());
  return out;
}

}  // namespace

std::string format_comparison(const std::vector<RunResult>& a, const std::vector<RunResult>& b, double margin) {
  if (a.empty() || b.empty()) throw std::invalid_argument("compare needs at least one run in each set");
  int name_width = 3;
  for (const auto* set : {&a, &b})
    for (const RunResult& r : *set) name_width = std::max(name_width, static_cast<int>(r.name.size()));
  std::string out = format_set("A", a, name_width) + format_set("B", b, name_width);

  const SampleSummary sa = summary_of(a, &RunResult::val_loss), sb = summary_of(b, &RunResult::val_loss);
  const double diff = sb.mean - sa.mean;
  out += strprintf("B - A: val_loss %+.6f nats, val_bpb %+.6f (positive: A is better)\n", diff,
                   summary_of(b, &RunResult::val_bpb).mean - summary_of(a, &RunResult::val_bpb).mean);

  out += diff > 0 ? strprintf("compare: A improves on B by %.4f nats (margin %g): ", diff, margin)
                  : strprintf("compare: A does not improve on B (B - A = %.4f nats, margin %g): ", diff, margin);
  const WelchTest w = welch_margin_test(sa, sb, margin);
  if (!w.undefined.empty()) return out + "no p-value: " + w.undefined + "\n";
  return out + strprintf("t=%.2f df=%.1f p=%.3g, %ssignificant at p<%g\n", w.t, w.df, w.p, w.p < kRecordAlpha ? "" : "not ",
                         kRecordAlpha);
}

}  // namespace pgolf
