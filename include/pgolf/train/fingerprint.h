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
// DATA_PATH and TOKENIZER_PATH, which are compared by content instead
// (`inputs`, input_identity(cfg), which a caller may need for more).
// (Ranks of two jobs that share a port never get this far: Dist's join
// compares job ids and rank numbers first.)
std::string run_fingerprint(const Config& cfg, const std::map<std::string, std::string>& inputs);

// The data and tokenizer by content, by entry: "data.<shard name>" and
// "tokenizer" -> "bytes:N crc32:C": the validation shards (names, sizes,
// CRC-32 of every byte, and of the byte sidecars), the training shards
// (names, sizes, CRC-32 of each header and of its first 64 KiB) and the
// tokenizer file (size, CRC-32). A checkpoint records it, so that a run
// resumes on the same data and tokenizer wherever they now lie.
std::map<std::string, std::string> input_identity(const Config& cfg);

// One entry whose value differs between two maps; a side that lacks the
// key holds the `missing` text passed to differing_entries.
struct EntryDifference {
  std::string key, first, second;
};

// The entries of `first` and `second` whose values differ, in key order.
std::vector<EntryDifference> differing_entries(const std::map<std::string, std::string>& first,
                                               const std::map<std::string, std::string>& second,
                                               const std::string& missing);

// Given every rank's fingerprint (by rank), throws std::runtime_error naming
// the first rank and entry that differ from rank 0's, with both values.
void check_same_fingerprints(const std::vector<std::string>& by_rank);

}  // namespace pgolf
