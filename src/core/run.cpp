#include "pgolf/core/run.h"

#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "pgolf/dist/dist.h"
#include "pgolf/core/io.h"

namespace pgolf {

std::string resolve_run_id(const Config& cfg) {
  if (!cfg.run_id.empty()) return cfg.run_id;
  char buf[32];
  std::time_t now = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y%m%d_%H%M%S", std::localtime(&now));
  return std::string(buf) + "_seed" + std::to_string(cfg.seed);
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

RunLog::RunLog(const Config& cfg, Mode mode)
    : mode_(mode), progress_(progress_wanted(cfg.progress, ::isatty(1), [](const char* n) { return std::getenv(n); })),
      run_id_(resolve_run_id(cfg)) {
  dir_ = cfg.log_dir + "/" + run_id_;
  if (mode_ != Mode::Files) return;
  make_dirs(dir_);
  write_file_atomic(dir_ + "/config.env", format_config(cfg));
  log_.open(dir_ + "/train.log", std::ios::app);
  metrics_.open(dir_ + "/metrics.jsonl", std::ios::app);
  if (!log_ || !metrics_) throw std::runtime_error("cannot write logs in '" + dir_ + "' (check LOG_DIR)");
}

void RunLog::line(const std::string& s) {
  if (mode_ == Mode::Silent) return;
  if (progress_) std::cout << "\r\033[K";
  std::cout << s << std::endl;
  if (mode_ == Mode::Files) log_ << s << std::endl;
}

void RunLog::metric(const std::string& event, std::initializer_list<std::pair<const char*, double>> values) {
  if (mode_ != Mode::Files) return;
  nlohmann::ordered_json j;
  j["event"] = event;
  for (const auto& [k, v] : values) j[k] = v;
  metrics_ << j.dump() << std::endl;
}

void RunLog::progress(const std::string& s) {
  if (mode_ == Mode::Silent || !progress_) return;
  std::cout << "\r\033[K" << s << std::flush;
}

}  // namespace pgolf
