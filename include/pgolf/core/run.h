// A run's outputs: the folder LOG_DIR/RUN_ID with the resolved configuration
// (config.env), the log (train.log: every line printed), and machine-readable
// metrics (metrics.jsonl: one JSON object per event).
#pragma once
#include <fstream>
#include <initializer_list>
#include <string>
#include <utility>

#include "pgolf/config/config.h"

namespace pgolf {

// RUN_ID, or when it is empty a new one from the date, time and SEED.
std::string resolve_run_id(const Config& cfg);

// Whether in-place progress lines go to stdout: PROGRESS=on/off, or for
// auto, stdout is a terminal and no launcher started this process (no
// mpirun, Slurm or torchrun variables).
bool progress_wanted(const std::string& setting, bool terminal, const Getenv& getenv);

class RunLog {
 public:
  // Files: console and run folder. Console: printing only (pgolf eval).
  // Silent: nothing (ranks other than 0 of a multi-process run).
  enum class Mode { Files, Console, Silent };
  explicit RunLog(const Config& cfg, Mode mode = Mode::Files);
  // Prints a line to stdout and appends it to train.log.
  void line(const std::string& s);
  // Appends {"event": event, key: value, ...} to metrics.jsonl.
  void metric(const std::string& event, std::initializer_list<std::pair<const char*, double>> values);
  // A status line rewritten in place (progress of long phases), where
  // progress_wanted(PROGRESS); nothing otherwise.
  void progress(const std::string& s);
  const std::string& dir() const { return dir_; }
  const std::string& run_id() const { return run_id_; }

 private:
  Mode mode_;
  bool progress_;
  std::string run_id_, dir_;
  std::ofstream log_, metrics_;
};

}  // namespace pgolf
