#include "pgolf/core/run.h"

#include <cmath>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pgolf/dist/dist.h"
#include "pgolf/core/io.h"

namespace pgolf {

std::string resolve_run_id(const Config& cfg) {
  if (!cfg.run.run_id.empty()) return cfg.run.run_id;
  char buf[32];
  std::time_t now = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y%m%d_%H%M%S", std::localtime(&now));
  return std::string(buf) + "_seed" + std::to_string(cfg.run.seed);
}

bool progress_wanted(const std::string& setting, bool terminal, const Getenv& getenv) {
  if (setting != "auto") return setting == "on";
  // Launchers (OpenMPI gives every rank a pseudo-terminal) interleave the
  // ranks' output into one log: in-place rewrites would fill it with \r codes.
  try {
    return terminal && detect_launch(getenv).launcher == "single";
  } catch (const std::invalid_argument&) {
    return false;  // launcher variables, if malformed ones
  }
}

RunFolderLock::RunFolderLock(const std::string& dir, FolderUse use) {
  namespace fs = std::filesystem;
  const std::string what = "run folder '" + dir + "'";
  if (use == FolderUse::New) {
    const fs::path parent = fs::path(dir).parent_path();
    if (!parent.empty()) make_dirs(parent.string());
    std::error_code ec;
    if (!fs::create_directory(dir, ec)) {
      if (ec) throw std::runtime_error("cannot create " + what + ": " + ec.message() + " (check LOG_DIR)");
      throw std::runtime_error(what + " exists already: continue that run with `pgolf train --resume " + dir +
                               "`, choose another RUN_ID, or replace it with `pgolf train --overwrite`");
    }
  } else if (use == FolderUse::Overwrite) {
    make_dirs(dir);  // a folder that is not there yet is simply made
  } else if (!fs::is_directory(dir)) {
    throw std::runtime_error(what + " does not exist");
  }
  const std::string lock = dir + "/run.lock";
  fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open '" + lock + "': " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {0};
    const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(what + " is in use by another pgolf process (pid " + (n > 0 ? std::string(pid, n) : "unknown") +
                             ", holding " + lock + "): wait for it to end, or choose another RUN_ID");
  }
  const std::string me = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size()))
    throw std::runtime_error("cannot write '" + lock + "': " + std::strerror(errno));
  if (use == FolderUse::Overwrite)
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.path().filename() != "run.lock") fs::remove_all(entry.path());
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

RunLog::RunLog(const Config& cfg, Mode mode)
    : mode_(mode), progress_(progress_wanted(cfg.runtime.progress, ::isatty(1), [](const char* n) { return std::getenv(n); })),
      run_id_(resolve_run_id(cfg)) {
  dir_ = cfg.run.log_dir + "/" + run_id_;
  if (mode_ != Mode::Files) return;
  make_dirs(dir_);
  write_file_atomic(dir_ + "/config.env", format_config(cfg));
  log_.open(dir_ + "/train.log", std::ios::app);
  metrics_.open(dir_ + "/metrics.jsonl", std::ios::app);
  if (!log_ || !metrics_) throw std::runtime_error("cannot write logs in '" + dir_ + "' (check LOG_DIR)");
}

namespace {

// Throws if the last write to `out` (flushed) failed.
void check_written(const std::ofstream& out, const std::string& path) {
  if (!out) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno) + " (is the disk full?)");
}

}  // namespace

void RunLog::line(const std::string& s) {
  if (mode_ == Mode::Silent) return;
  if (progress_) std::cout << "\r\033[K";
  std::cout << s << std::endl;
  if (mode_ != Mode::Files) return;
  log_ << s << std::endl;
  check_written(log_, dir_ + "/train.log");
}

void RunLog::metric(const std::string& event, std::initializer_list<std::pair<const char*, double>> values) {
  if (mode_ != Mode::Files) return;
  nlohmann::ordered_json j;
  j["event"] = event;
  for (const auto& [k, v] : values) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e15)  // exact in a double, so exact as an integer
      j[k] = static_cast<std::int64_t>(v);
    else
      j[k] = v;
  }
  metrics_ << j.dump() << std::endl;
  check_written(metrics_, dir_ + "/metrics.jsonl");
}

void RunLog::metric(const std::string& event, const std::vector<std::pair<std::string, std::string>>& values) {
  if (mode_ != Mode::Files) return;
  nlohmann::ordered_json j;
  j["event"] = event;
  for (const auto& [k, v] : values) j[k] = v;
  metrics_ << j.dump() << std::endl;
  check_written(metrics_, dir_ + "/metrics.jsonl");
}

void RunLog::error(const std::string& message) noexcept {
  if (mode_ != Mode::Files) return;
  try {
    log_ << "error: " << message << std::endl;
    nlohmann::ordered_json j;
    j["event"] = "error";
    j["message"] = message;
    metrics_ << j.dump() << std::endl;
  } catch (...) {  // the error itself goes to stderr anyway
  }
}

void RunLog::progress(const std::string& s) {
  if (mode_ == Mode::Silent || !progress_) return;
  std::cout << "\r\033[K" << s << std::flush;
}

}  // namespace pgolf
