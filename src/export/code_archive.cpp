#include "pgolf/export/code_archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <memory>
#include <set>
#include <stdexcept>

#include "pgolf/config/components.h"
#include "pgolf/export/minify.h"

namespace pgolf {
namespace {

la_ssize_t append_to_string(struct archive*, void* out, const void* data, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), n);
  return static_cast<la_ssize_t>(n);
}

struct TarEntry {
  std::string key;  // the sort key: the path, with a trailing '/' for directories
  std::string path;
  const std::string* data;  // null for a directory
};

}  // namespace

std::vector<std::pair<std::string, std::string>> embedded_sources() {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(detail::kEmbeddedSourceCount);
  for (std::size_t i = 0; i < detail::kEmbeddedSourceCount; ++i) {
    const auto& f = detail::kEmbeddedSources[i];
    out.emplace_back(f.path, std::string(f.data, f.size));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string build_commit() { return detail::kBuildCommit; }

std::vector<std::pair<std::string, std::string>> counted_sources() {
  auto files = embedded_sources();
  if constexpr (kHasMinifier)
    for (auto& [path, data] : files) data = minify_source(path, data);
  return files;
}

std::vector<std::pair<std::string, std::string>> counted_sources(const Config& cfg) {
  std::set<std::string> unused;
  for (std::size_t i = 0; i < detail::kComponentFileCount; ++i) {
    const auto& f = detail::kComponentFiles[i];
    const Component* c = find_component(f.component);
    if (!c) throw std::logic_error(std::string("cmake/components.cmake names component ") + f.component +
                                   ", which config/components.cpp does not know");
    if (!c->used(cfg)) unused.insert(f.path);
  }
  auto files = counted_sources();
  files.erase(std::remove_if(files.begin(), files.end(), [&](const auto& f) { return unused.count(f.first) > 0; }), files.end());
  return files;
}

std::string code_tar() { return code_tar(counted_sources()); }

std::string code_tar(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<TarEntry> entries;
  std::set<std::string> dirs;
  for (const auto& [path, data] : files) {
    entries.push_back({path, path, &data});
    for (auto slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1))
      dirs.insert(path.substr(0, slash));
  }
  for (const auto& d : dirs) entries.push_back({d + "/", d, nullptr});
  // A directory's key is a prefix of its contents' keys, so it comes first.
  std::sort(entries.begin(), entries.end(), [](const TarEntry& a, const TarEntry& b) { return a.key < b.key; });

  std::unique_ptr<struct archive, decltype(&archive_write_free)> a(archive_write_new(), archive_write_free);
  std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
  if (!a || !e) throw std::runtime_error("code archive: libarchive out of memory");
  auto check = [&](int r, const std::string& what) {
    if (r != ARCHIVE_OK) {
      const char* msg = archive_error_string(a.get());
      throw std::runtime_error("code archive: " + what + ": " + (msg ? msg : "libarchive error " + std::to_string(r)));
    }
  };
  std::string out;
  check(archive_write_set_format_ustar(a.get()), "ustar format");
  check(archive_write_add_filter_none(a.get()), "no filter");
  check(archive_write_set_bytes_in_last_block(a.get(), 1), "last block");  // no padding after the end marker
  check(archive_write_open(a.get(), &out, nullptr, append_to_string, nullptr), "open");
  for (const auto& t : entries) {
    archive_entry_clear(e.get());
    archive_entry_set_pathname_utf8(e.get(), t.path.c_str());
    archive_entry_set_filetype(e.get(), t.data ? AE_IFREG : AE_IFDIR);
    archive_entry_set_perm(e.get(), t.data ? 0644 : 0755);
    archive_entry_set_size(e.get(), t.data ? static_cast<la_int64_t>(t.data->size()) : 0);
    archive_entry_set_mtime(e.get(), 0, 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    check(archive_write_header(a.get(), e.get()), "header of '" + t.path + "'");
    if (t.data && !t.data->empty() &&
        archive_write_data(a.get(), t.data->data(), t.data->size()) != static_cast<la_ssize_t>(t.data->size()))
      check(ARCHIVE_FATAL, "data of '" + t.path + "'");
  }
  check(archive_write_close(a.get()), "close");
  return out;
}

CodeArchive code_archive(Codec c) { return code_archive(c, counted_sources()); }

CodeArchive code_archive(Codec c, const std::vector<std::pair<std::string, std::string>>& files) {
  CodeArchive r;
  const std::string tar = code_tar(files);
  r.bytes = compress(tar, c);
  r.tar_bytes = tar.size();
  r.raw_bytes = 0;
  for (const auto& [path, data] : files) r.raw_bytes += data.size();
  r.codec = c;
  return r;
}

}  // namespace pgolf
