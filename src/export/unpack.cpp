#include "pgolf/export/unpack.h"

#include <archive.h>
#include <archive_entry.h>

#include <filesystem>
#include <memory>
#include <stdexcept>

#include "pgolf/core/io.h"
#include "pgolf/export/script.h"

namespace pgolf {
namespace {

// Whether a member path stays inside the folder it is unpacked into.
bool contained(const std::string& path) {
  const std::filesystem::path p(path);
  if (path.empty() || p.is_absolute() || p.has_root_name()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

}  // namespace

std::vector<ArchiveMember> read_code_archive(const std::string& path) {
  const std::string tar = script_archive_tar(read_file(path), path);
  std::unique_ptr<struct archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  if (!a || archive_read_support_format_tar(a.get()) != ARCHIVE_OK ||
      archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK)
    throw std::runtime_error("'" + path + "': cannot read the tar inside the code archive");
  std::vector<ArchiveMember> members;
  struct archive_entry* e = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    const bool dir = archive_entry_filetype(e) == AE_IFDIR;
    if (dir && !name.empty() && name.back() == '/') name.pop_back();
    if (!dir && archive_entry_filetype(e) != AE_IFREG)
      throw std::runtime_error("'" + path + "': member '" + printable(name) + "' is neither a folder nor a regular file");
    if (!contained(name))
      throw std::runtime_error("'" + path + "': member '" + printable(name) + "' would land outside the folder unpacked into");
    ArchiveMember m{name, dir, std::string(dir ? 0 : static_cast<std::size_t>(archive_entry_size(e)), '\0')};
    if (!m.data.empty() && archive_read_data(a.get(), m.data.data(), m.data.size()) != static_cast<la_ssize_t>(m.data.size()))
      throw std::runtime_error("'" + path + "': member '" + printable(name) + "' is truncated");
    members.push_back(std::move(m));
  }
  if (r != ARCHIVE_EOF) {
    const char* msg = archive_error_string(a.get());
    throw std::runtime_error("'" + path + "': corrupt tar inside the code archive" + (msg ? std::string(": ") + msg : ""));
  }
  return members;
}

std::vector<ArchiveMember> unpack_code_archive(const std::string& path, const std::string& dir) {
  namespace fs = std::filesystem;
  if (fs::exists(dir) && !(fs::is_directory(dir) && fs::is_empty(dir)))
    throw std::runtime_error("'" + dir + "' exists and is not an empty folder: choose a new --output folder");
  const std::vector<ArchiveMember> members = read_code_archive(path);
  make_dirs(dir);
  for (const ArchiveMember& m : members) {
    const std::string target = (fs::path(dir) / m.path).string();
    if (m.dir) {
      make_dirs(target);
    } else {
      make_dirs(fs::path(target).parent_path().string());
      write_file_atomic(target, m.data);
    }
  }
  return members;
}

}  // namespace pgolf
