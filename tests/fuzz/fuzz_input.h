// The fuzz input as a file, for the readers that take a path: written to a
// temp file of this process, removed again when the object goes away.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace pgolf::fuzz {

class InputFile {
 public:
  // `suffix` matters where the reader looks at the name (".jsonl").
  InputFile(const std::uint8_t* data, std::size_t size, const std::string& suffix = "")
      : path_((std::filesystem::temp_directory_path() / ("pgolf-fuzz-" + std::to_string(::getpid()) + suffix)).string()) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) {
      std::perror(path_.c_str());
      std::abort();  // the harness, not the reader, failed: stop the run
    }
  }
  ~InputFile() { std::remove(path_.c_str()); }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace pgolf::fuzz
