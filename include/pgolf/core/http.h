// HTTP GET over libcurl (pgolf download): a small response into memory, or a
// large one into a file, resumed with a Range request. Optional at build
// time: without libcurl every call throws an error that says how to get it.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace pgolf {

// Whether this build has libcurl (false: the calls below throw).
bool http_available();

// One GET; redirects are followed. `bearer_token`, when not empty, is sent as
// "Authorization: Bearer <token>" (to the first host only, not to redirects).
struct HttpRequest {
  std::string url;
  std::string bearer_token;
};

// How a GET ended. status: the last HTTP status (0: no response). error:
// empty on success, else the reason (network error, HTTP error, local write
// error).
struct HttpResult {
  long status = 0;
  std::string error;
};

// The body of `req.url` into `body` (small files: the manifest).
HttpResult http_get_string(const HttpRequest& req, std::string* body);

// Downloads `url` into `path`. With offset > 0 (the bytes `path` already
// holds) asks for "Range: bytes=<offset>-" and appends when the server answers
// 206; a 200 (a server that ignores Range) rewrites the file. Once the
// response headers are in, on_start(from, size) says where the body starts in
// the file (offset, or 0 when rewriting) and the whole file's size (-1 when
// the server sends no length); on_bytes(n) follows every n bytes written.
// Neither call throws for a failed transfer (it comes back in the result, for
// the caller to retry or report); both throw when built without libcurl.
HttpResult http_get_file(const HttpRequest& req, const std::string& path, std::int64_t offset,
                           const std::function<void(std::int64_t, std::int64_t)>& on_start,
                           const std::function<void(std::int64_t)>& on_bytes);

}  // namespace pgolf
