// Files: whole files read into memory, atomic writes (temp file, then rename), globbing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pgolf {

// A whole file read into memory (not mapped: a file truncated or rewritten
// in place by another process cannot change or fault what was read).
// Empty files have size 0.
class ReadOnlyFile {
 public:
  explicit ReadOnlyFile(const std::string& path);

  const std::uint8_t* data() const { return bytes_.get(); }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<std::uint8_t[]> bytes_;
  std::size_t size_ = 0;
};

// Writes `path` so that readers never see a partial file: the bytes go to
// `path.tmp.<host>.<pid>`, are flushed, the temp file is renamed over `path`
// and the folder is flushed too, so the rename survives a power cut. On any
// failure the temp file is removed and the error names `path`. A process
// killed mid-write leaves its temp file behind; the next AtomicFile of the
// same path removes those of processes of this host that no longer run.
// The temp name of `path` for this process: path.tmp.<host>.<pid>.
std::string temp_path_for(const std::string& path);
// Removes the temp files and folders of `path` (temp_path_for) left by
// processes of this host that no longer run.
void remove_stale_temps(const std::string& path);

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();  // removes the temp file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();  // fsync, close, rename

 private:
  std::string path_, tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::string_view contents);
std::string read_file(const std::string& path);
// The CRC-32 (zlib's) of a file's first `limit` bytes (all of it by default),
// read in 1 MiB pieces: a content hash for files too large to hold in memory.
std::uint32_t file_crc32(const std::string& path, std::uintmax_t limit = UINTMAX_MAX);

// Sorted list of paths matching a shell pattern (no error when nothing matches).
std::vector<std::string> glob_sorted(const std::string& pattern);

// Creates a directory and its parents; no-op when it exists.
void make_dirs(const std::string& path);

// True when `path` ends in `suffix` (file-type checks such as ".safetensors").
bool ends_with(const std::string& path, const std::string& suffix);

// A name read from a file (a tensor name), safe to print: bytes outside
// printable ASCII are shown as \xNN and a backslash as \\, so a corrupt
// or hostile name cannot move the cursor, clear the screen or hide text.
std::string printable(std::string_view name);

}  // namespace pgolf
