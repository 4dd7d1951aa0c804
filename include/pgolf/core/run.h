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

// How `pgolf train` takes its folder LOG_DIR/RUN_ID:
//   New:       the folder must not exist yet, and is created atomically (a
//              finished run's outputs are never overwritten, two runs never share one);
//   Resume:    the folder must exist (--resume);
//   Overwrite: an existing folder's contents are removed first (--overwrite).
enum class FolderUse { New, Resume, Overwrite };

// Holds RUN_DIR/run.lock (an exclusive flock, released by the system even
// when the process dies) while it lives. Construction takes the folder as
// `use` says; a refusal throws std::runtime_error naming the folder, why
// (it exists; it is missing; another live process holds it, with its pid) and
// what to do instead.
class RunFolderLock {
 public:
  RunFolderLock(const std::string& dir, FolderUse use);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

class RunLog {
 public:
  // Files: console and run folder. Console: printing only (pgolf eval).
  // Silent: nothing (ranks other than 0 of a multi-process run).
  enum class Mode { Files, Console, Silent };
  explicit RunLog(const Config& cfg, Mode mode = Mode::Files);
  // Prints a line to stdout and appends it to train.log. A write that fails
  // (a full disk, a removed folder) throws at once, naming the file.
  void line(const std::string& s);
  // Appends {"event": event, key: value, ...} to metrics.jsonl; a failed write throws.
  // Integral values print as JSON integers ("step":3), the rest as numbers.
  void metric(const std::string& event, std::initializer_list<std::pair<const char*, double>> values);
  // The same with text values.
  void metric(const std::string& event, const std::vector<std::pair<std::string, std::string>>& values);
  // The error that ends the run: the last line of train.log ("error: ...") and
  // {"event":"error","message":...} in metrics.jsonl, as far as they can still
  // be written (never throws).
  void error(const std::string& message) noexcept;
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
