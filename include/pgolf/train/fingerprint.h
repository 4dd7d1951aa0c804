// What decides a rank's results, compared across the ranks of a run before
// any work: every ranks must train the same configuration on the same data
// with the same tokenizer, or the run (and its score) would mix them.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "pgolf/config/config.h"

namespace pgolf {

// "name=value" lines: config.<KEY> for every key that changes results but
// DATA_PATH and TOKENIZER_PATH, which are compared by content instead: the
// validation shards (names, sizes, CRC-32 of every byte, and of the byte
// sidecars), the training shards (names, sizes, CRC-32 of each header and
// of its first 64 KiB) and the tokenizer file (size, CRC-32).
// The first line is job=<job id> (LaunchInfo::job_id): ranks of two jobs
// that share a port, a configuration and the data still differ there.
std::string run_fingerprint(const Config& cfg, const std::string& job_id = "");

// The data and tokenizer part of it by entry: "data.<shard name>" and
// "tokenizer" -> "bytes:N crc32:C". A checkpoint records it, so that a run
// resumes on the same data and tokenizer wherever they now lie.
std::map<std::string, std::string> input_identity(const Config& cfg);

// Given every rank's fingerprint (by rank), throws std::runtime_error naming
// the first rank and entry that differ from rank 0's, with both values.
void check_same_fingerprints(const std::vector<std::string>& by_rank);

}  // namespace pgolf
