// `pgolf download`: the official challenge data from a Hugging Face dataset
// repository (docs/DATA.md): the manifest, one variant's val and train
// shards and its tokenizer, fetched in parallel, resumed, checked, renamed
// into place.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>

namespace pgolf {

constexpr const char* kDefaultRepo = "willdepueoai/parameter-golf";
constexpr const char* kDefaultEndpoint = "https://huggingface.co";

struct DownloadOptions {
  std::string variant = "sp1024";  // the dataset fineweb10B_<variant>
  int train_shards = 80;           // train shards 0..N-1 (0: val only)
  std::string repo = kDefaultRepo;
  std::string endpoint = kDefaultEndpoint;
  std::string out = "data";  // gets datasets/fineweb10B_<variant>/, tokenizers/, manifest.json
  int jobs = 8;              // parallel transfers
  std::string token;         // sent as "Authorization: Bearer <token>" when not empty
  bool progress = false;     // an in-place progress line (\r) besides the per-file lines
};

// {endpoint}/datasets/{repo}/resolve/main/{path}: a file of the repository's main revision.
std::string repo_file_url(const std::string& endpoint, const std::string& repo, const std::string& path);

struct DownloadSummary {
  int fetched = 0;            // files transferred by this run
  int present = 0;            // files already there and valid, skipped
  std::int64_t bytes = 0;     // bytes transferred by this run
  std::string data_path;      // the shard folder (DATA_PATH)
  std::string tokenizer_path; // the SentencePiece model (TOKENIZER_PATH), empty when the variant has none
};

// Reads the manifest, then fetches every file of the variant that is not
// already in opts.out and valid: to <file>.part (continued with a Range
// request when one is left from before), shards checked (header, size and
// the manifest's token counts), renamed into place; then records the
// tokenizer beside the shards (tokenizer_check.h). Prints a line per file to
// `log`. Throws after the other transfers have ended, naming every file that
// failed with its URL and HTTP status; a rerun continues where it stopped.
DownloadSummary download_dataset(const DownloadOptions& opts, std::ostream& log);

}  // namespace pgolf
