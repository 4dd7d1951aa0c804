#include "pgolf/core/io.h"

#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pgolf {
namespace {

std::runtime_error os_error(const std::string& what, const std::string& path) {
  return std::runtime_error(what + " '" + path + "': " + std::strerror(errno));
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "host";
  return buf;
}

bool process_gone(const std::string& pid) {
  if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) return false;
  return ::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH;
}

// Flushes the folder holding `path`, which makes a rename into it durable.
// Best effort: the file is complete and in place either way, and some
// filesystems cannot flush a folder.
void sync_parent_dir(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? "." : parent.string();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

// pread until the size fstat gave: a file that shrinks meanwhile (rewritten
// in place by another process) is an error here, never a bus error later as
// it would be in a memory map; what was read stays as it was read.
ReadOnlyFile::ReadOnlyFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw os_error("cannot open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw os_error("cannot stat", path);
  }
  size_ = static_cast<std::size_t>(st.st_size);
  bytes_.reset(new std::uint8_t[size_ > 0 ? size_ : 1]);
  for (std::size_t done = 0; done < size_;) {
    const ssize_t n = ::pread(fd, bytes_.get() + done, std::min<std::size_t>(size_ - done, std::size_t{1} << 30),
                              static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      if (n < 0) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(err));
      throw std::runtime_error("'" + path + "' shrank while being read (" + std::to_string(done) + " of " +
                               std::to_string(size_) + " bytes): another process is rewriting it");
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

std::string temp_path_for(const std::string& path) { return path + ".tmp." + host_name() + "." + std::to_string(::getpid()); }

void remove_stale_temps(const std::string& path) {
  const std::string prefix = path + ".tmp." + host_name() + ".";
  const std::filesystem::path p(prefix);
  const std::filesystem::path dir = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  const std::string name = p.filename().string();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string f = entry.path().filename().string();
    if (f.size() > name.size() && f.compare(0, name.size(), name) == 0 && process_gone(f.substr(name.size())))
      std::filesystem::remove_all(entry.path(), ec);
  }
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  remove_stale_temps(path_);
  tmp_path_ = temp_path_for(path_);
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw os_error("cannot create", tmp_path_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFile::write(const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw os_error("cannot write", tmp_path_);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) throw os_error("cannot flush", tmp_path_);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw os_error("cannot close", tmp_path_);
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) throw os_error("cannot rename to", path_);
  committed_ = true;
  sync_parent_dir(path_);
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicFile f(path);
  f.write(contents);
  f.commit();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw os_error("cannot open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::uint32_t file_crc32(const std::string& path, std::uintmax_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw os_error("cannot read", path);
  uLong crc = ::crc32(0L, Z_NULL, 0);
  std::vector<char> buf(1 << 20);
  std::uintmax_t left = limit;
  while (left > 0 && in) {
    in.read(buf.data(), static_cast<std::streamsize>(std::min<std::uintmax_t>(buf.size(), left)));
    const auto n = static_cast<std::size_t>(in.gcount());
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(n));
    left -= n;
  }
  return static_cast<std::uint32_t>(crc);
}

std::vector<std::string> glob_sorted(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  if (rc == 0) {
    for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  if (rc != 0 && rc != GLOB_NOMATCH) throw std::runtime_error("cannot expand pattern '" + pattern + "'");
  std::sort(out.begin(), out.end());
  return out;
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw std::runtime_error("cannot create directory '" + path + "': " + ec.message());
}

bool ends_with(const std::string& path, const std::string& suffix) {
  return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string printable(std::string_view name) {
  std::string out;
  for (unsigned char c : name) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace pgolf
