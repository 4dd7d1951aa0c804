#include "pgolf/core/http.h"

#include <stdexcept>

#ifdef PGOLF_WITH_CURL
#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#endif

namespace pgolf {

#ifdef PGOLF_WITH_CURL

namespace {

// One libcurl easy handle set up for `req`: redirects followed, HTTP errors
// (>= 400) ending the transfer, a stall (under 1 kB/s for 60 s) aborting it.
class Transfer {
 public:
  Transfer(const HttpRequest& req, std::int64_t offset) {
    static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);  // once, before the first handle
    if (init != CURLE_OK) throw std::runtime_error(std::string("cannot initialise libcurl: ") + curl_easy_strerror(init));
    curl_ = curl_easy_init();
    if (!curl_) throw std::runtime_error("cannot create a libcurl handle (out of memory?)");
    curl_easy_setopt(curl_, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl_, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(curl_, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "pgolf");
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error_);
    if (!req.bearer_token.empty()) {
      headers_ = curl_slist_append(headers_, ("Authorization: Bearer " + req.bearer_token).c_str());
      curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    }
    if (offset > 0) curl_easy_setopt(curl_, CURLOPT_RANGE, (std::to_string(offset) + "-").c_str());
  }
  ~Transfer() {
    curl_easy_cleanup(curl_);
    curl_slist_free_all(headers_);
  }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  // Sends the body to write(data, size, user), which returns size to go on.
  void set_sink(curl_write_callback write, void* user) {
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, write);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, user);
  }
  // Runs the transfer; the result's error is empty on success.
  HttpResult perform() {
    HttpResult r;
    const CURLcode rc = curl_easy_perform(curl_);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    if (rc != CURLE_OK) r.error = error_[0] ? error_ : curl_easy_strerror(rc);
    return r;
  }
  long status() const {
    long s = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &s);
    return s;
  }
  // Body bytes of the current response, -1 when the server sent no length.
  std::int64_t content_length() const {
    curl_off_t n = -1;
    curl_easy_getinfo(curl_, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &n);
    return n;
  }

 private:
  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;
  char error_[CURL_ERROR_SIZE] = {};
};

size_t append_to_string(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// The body of a file transfer: the file is opened at the first byte, when the
// status says whether the server honoured the Range (206: append) or not
// (200: rewrite).
struct FileSink {
  FileSink(Transfer* t, const std::string& path, std::int64_t offset,
           const std::function<void(std::int64_t, std::int64_t)>& on_start, const std::function<void(std::int64_t)>& on_bytes)
      : transfer(t), path(path), offset(offset), on_start(on_start), on_bytes(on_bytes) {}
  ~FileSink() {
    if (fd >= 0) ::close(fd);
  }
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  Transfer* transfer;
  const std::string& path;
  std::int64_t offset;
  const std::function<void(std::int64_t, std::int64_t)>& on_start;
  const std::function<void(std::int64_t)>& on_bytes;
  int fd = -1;
  std::string error;

  bool open() {
    const bool append = offset > 0 && transfer->status() == 206;
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0) return fail("cannot create");
    const std::int64_t from = append ? offset : 0, length = transfer->content_length();
    on_start(from, length >= 0 ? from + length : -1);
    return true;
  }
  bool write(const char* data, size_t n) {
    if (fd < 0 && !open()) return false;
    for (size_t done = 0; done < n;) {
      const ssize_t w = ::write(fd, data + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return fail("cannot write");
      done += static_cast<size_t>(w);
    }
    on_bytes(static_cast<std::int64_t>(n));
    return true;
  }
  // Flushes and closes the file (creating it when the body was empty).
  bool finish() {
    if (fd < 0 && !open()) return false;
    const bool ok = ::fsync(fd) == 0;
    const int fd_was = fd;
    fd = -1;
    if (::close(fd_was) != 0 || !ok) return fail("cannot write");
    return true;
  }
  bool fail(const char* what) {
    error = std::string(what) + " '" + path + "': " + std::strerror(errno);
    return false;
  }
};

size_t write_to_file(char* data, size_t size, size_t n, void* user) {
  return static_cast<FileSink*>(user)->write(data, size * n) ? size * n : 0;
}

}  // namespace

bool http_available() { return true; }

HttpResult http_get_string(const HttpRequest& req, std::string* body) {
  Transfer t(req, 0);
  body->clear();
  t.set_sink(append_to_string, body);
  return t.perform();
}

HttpResult http_get_file(const HttpRequest& req, const std::string& path, std::int64_t offset,
                         const std::function<void(std::int64_t, std::int64_t)>& on_start,
                         const std::function<void(std::int64_t)>& on_bytes) {
  Transfer t(req, offset);
  FileSink sink(&t, path, offset, on_start, on_bytes);
  t.set_sink(write_to_file, &sink);
  HttpResult r = t.perform();
  if (r.error.empty() && !sink.finish()) r.error = sink.error;
  if (!sink.error.empty()) r.error = sink.error;  // a local write error, rather than curl's "write failed"
  return r;
}

#else

namespace {
[[noreturn]] void no_curl() {
  throw std::runtime_error(
      "this pgolf was built without libcurl, so it cannot download: install libcurl4-openssl-dev and rebuild "
      "(bash scripts/setup.sh does both; rerun `cmake build` first so an existing build folder finds it), or "
      "download the data on a machine with network access and copy it here (docs/DATA.md)");
}
}  // namespace

bool http_available() { return false; }
HttpResult http_get_string(const HttpRequest&, std::string*) { no_curl(); }
HttpResult http_get_file(const HttpRequest&, const std::string&, std::int64_t,
                         const std::function<void(std::int64_t, std::int64_t)>&, const std::function<void(std::int64_t)>&) {
  no_curl();
}

#endif

}  // namespace pgolf
