// A run's outputs: the folder LOG_DIR/RUN_ID with the resolved configuration
// (config.env), the log (train.log: every line printed), and machine-readable
// metrics (metrics.jsonl: one JSON object per event).
#pragma once
#include <fstream>
#include <initializer_list>
#include <string>
#include <utility>

#include "pgolf/config.h"

namespace pgolf {

class RunLog {
 public:
  // `writer` is false on ranks that only print nothing (multi-process runs).
  RunLog(const Config& cfg, bool writer = true);
  // Prints a line to stdout and appends it to train.log.
  void line(const std::string& s);
  // Appends {"event": event, key: value, ...} to metrics.jsonl.
  void metric(const std::string& event, std::initializer_list<std::pair<const char*, double>> values);
  // A status line rewritten in place on a terminal (progress of long phases);
  // nothing when stdout is not a terminal.
  void progress(const std::string& s);
  const std::string& dir() const { return dir_; }
  const std::string& run_id() const { return run_id_; }

 private:
  bool writer_, tty_;
  std::string run_id_, dir_;
  std::ofstream log_, metrics_;
};

}  // namespace pgolf
