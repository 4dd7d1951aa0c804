// `pgolf compare` tests: run folders as `pgolf train` leaves them, reduced to
// what compare reads (metrics.jsonl with a final event, config.env with SEED).
#pragma once
#include <cstdio>
#include <string>

#include "helpers.h"
#include "pgolf/core/io.h"

namespace pgolf::test {

// A finished run in `dir`: a train event, then a final event whose whole
// numbers are written as JSON doubles (2.0), as RunLog::metric writes them,
// and a config.env with SEED and a comment after it.
inline void write_finished_run(const std::string& dir, int seed, double val_loss, double val_bpb) {
  make_dirs(dir);
  write_text(dir + "/config.env", "RUN_ID=run\nSEED=" + std::to_string(seed) + "  # the sweep's seed\nLOG_DIR=logs\n");
  char final_line[512];
  std::snprintf(final_line, sizeof final_line,
                "{\"event\":\"final\",\"steps\":7000.0,\"train_time_ms\":599512.5,\"val_loss\":%.17g,\"val_bpb\":%.17g,"
                "\"artifact_bytes\":15800000.0,\"total_bytes\":15912345.0}\n",
                val_loss, val_bpb);
  write_text(dir + "/metrics.jsonl",
             std::string("{\"event\":\"train\",\"step\":1.0,\"train_loss\":6.9,\"train_time_ms\":85.0}\n") + final_line);
}

}  // namespace pgolf::test
