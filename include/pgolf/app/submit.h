// `pgolf submit`: finished runs of one configuration (several seeds) turned
// into the folder a pull request to the challenge's records adds: README.md,
// submission.json, each run's train log and the counted code, train_gpt.py
// (export/script.h). It refuses runs that did not finish, that fail a rule
// of docs/RULES.md, were scored on part of the validation split, differ in
// anything but SEED, RUN_ID and LOG_DIR, or share a seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pgolf/app/compare.h"
#include "pgolf/config/config.h"

namespace pgolf {

struct SubmitOptions {
  std::vector<std::string> runs;  // run folders of `pgolf train`
  std::string output;             // the records folder to create (new, or empty)
  std::string name, author, github_id;
  std::string track = "track_10min_16mb";
  std::string date;  // YYYY-MM-DD; empty: today (UTC)
};

// submission.json: the fields of the challenge's records (author, github_id,
// name, date, track, val_bpb and its sample std over the seeds, val_loss,
// seeds, seed_results per seed with val_loss, val_bpb, steps, artifact,
// code and total bytes, train and eval seconds; bytes_total (the largest),
// bytes_code, hardware, techniques, pgolf's version). `runs` are in seed order.
std::string submission_json(const SubmitOptions& o, const std::vector<RunResult>& runs, std::uint64_t code_bytes,
                            const Config& cfg);

// What the configuration trains and how it packs, one phrase per technique.
std::vector<std::string> techniques(const Config& cfg);

int cmd_submit(const SubmitOptions& o);

}  // namespace pgolf
