// `pgolf compare`: the final results of two sets of `pgolf train` runs (for
// instance the same configuration over several seeds) and whether set A
// improves on set B by at least a margin in val_loss, by the one-sided Welch
// t-test of eval/stats.h. The challenge accepts a new record that beats the
// previous one by at least 0.005 nats at p < 0.01.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pgolf {

constexpr double kRecordMargin = 0.005;  // nats of val_loss
constexpr double kRecordAlpha = 0.01;    // the p-value a record must be below

// One run's final event: the last {"event":"final",...} line of metrics.jsonl,
// with the last compliance and provenance events before it.
struct RunResult {
  std::string name;  // the run folder or metrics.jsonl, as given
  std::string seed;  // SEED in the run's config.env; "?" without one
  double val_loss = 0, val_bpb = 0, train_time_ms = 0;
  std::int64_t steps = 0, total_bytes = 0, artifact_bytes = 0;
  double eval_ms = -1;  // -1: the final event has none (pgolf before 0.9.0)
  std::vector<std::pair<std::string, std::string>> compliance;  // (rule, "pass"|"fail"), in the event's order
  std::map<std::string, std::string> provenance;                // its string fields (device_name, world_size, ...)
};

// Reads a run folder written by `pgolf train`, or a metrics.jsonl given
// directly (the seed then comes from the config.env beside it). Lines that
// are not JSON objects (a line cut short by a crash) are skipped. Each error
// names the path and what is missing: the path itself, metrics.jsonl, the
// final event (the run did not finish; the message says how it ended as far
// as its last event tells), or a number of the final event.
RunResult read_run_result(const std::string& path);

// The report: each set's runs in a table with their count, mean and sample
// standard deviation of val_loss and val_bpb; the difference of the means
// (B - A, positive when A is better); and the verdict line
//   compare: A improves on B by D nats (margin M): t=T df=DF p=P, [not ]significant at p<0.01
// or, without a test (welch_margin_test), why there is no p-value.
std::string format_comparison(const std::vector<RunResult>& a, const std::vector<RunResult>& b, double margin);

}  // namespace pgolf
