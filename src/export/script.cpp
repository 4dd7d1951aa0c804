#include "pgolf/export/script.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "pgolf/core/codec.h"
#include "pgolf/export/code_archive.h"

namespace pgolf {
namespace {

// The Python around the configuration (C) and the archive (P). The build
// folder is named by a CRC of both, so an edited script never runs a stale
// binary; local rank 0 builds while the other ranks of the node wait for it.
constexpr char kHead[] =
    "# pgolf %VERSION%: the counted code of this submission (coding:latin-1, P holds raw bytes). Unpacks pgolf's C++ source,\n"
    "# builds it against this Python's PyTorch (cmake, a C++17 compiler and the libraries README.md lists)\n"
    "# and trains the configuration C; the environment and --set KEY=VALUE arguments override it:\n"
    "#   SEED=42 torchrun --standalone --nproc_per_node=8 train_gpt.py\n"
    "import io,lzma,os,shutil,subprocess as s,sys,tarfile,time,zlib\n";
constexpr char kTail[] =
    "d=os.path.abspath(os.environ.get(\"PGOLF_BUILD_DIR\",\"pgolf_build\"))+\"/%08x\"%zlib.crc32((C+P).encode());b=d+\"/b/pgolf\"\n"
    "if os.environ.get(\"LOCAL_RANK\",\"0\")==\"0\"and not os.path.exists(d+\"/built\"):\n"
    " import torch\n"
    " t=tarfile.open(fileobj=io.BytesIO(lzma.decompress(P.encode(\"latin-1\"))))\n"
    " t.extractall(d+\"/src\",**({\"filter\":\"data\"}if hasattr(tarfile,\"data_filter\")else{}))\n"
    " open(d+\"/config.env\",\"wb\").write(C.encode(\"latin-1\"))\n"
    " s.run([\"cmake\",\"-S\",d+\"/src\",\"-B\",d+\"/b\",\"-DCMAKE_BUILD_TYPE=Release\",\"-DCMAKE_PREFIX_PATH=\"+torch.utils.cmake_prefix_path]"
    "+[\"-GNinja\"]*bool(shutil.which(\"ninja\")),check=True)\n"
    " s.run([\"cmake\",\"--build\",d+\"/b\",\"-j\",str(os.cpu_count()),\"--target\",\"pgolf\"],check=True)\n"
    " open(d+\"/built\",\"w\").close()\n"
    "while not os.path.exists(d+\"/built\"):time.sleep(1)\n"
    "os.execv(b,[b,\"train\",\"--config\",d+\"/config.env\"]+sys.argv[1:])\n";
constexpr char kPayloadStart[] = "\nP=\"";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
  return text;
}

}  // namespace

// Each byte is the character of the same number (the file is read as
// latin-1), but for the five a literal cannot hold raw.
std::string latin1_literal(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 50);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    const bool octal_next = i + 1 < bytes.size() && bytes[i + 1] >= '0' && bytes[i + 1] <= '7';
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += octal_next ? "\\x00" : "\\0"; break;
      default: out += c;
    }
  }
  return out;
}

std::string latin1_literal_value(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '"' || c == '\n' || c == '\r' || c == '\0')
      throw std::runtime_error("string literal: a raw quote, line break or NUL at character " + std::to_string(i));
    if (c != '\\') {
      out += c;
      continue;
    }
    const std::string_view escape = body.substr(i, 4);
    if (escape == "\\x00") {
      out += '\0';
      i += 3;
      continue;
    }
    const bool octal_after = escape.size() > 2 && escape[2] >= '0' && escape[2] <= '7';
    switch (escape.size() > 1 ? escape[1] : ' ') {
      case '\\': out += '\\'; break;
      case '"': out += '"'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case '0': if (!octal_after) { out += '\0'; break; } [[fallthrough]];
      default:
        throw std::runtime_error("string literal: the escape at character " + std::to_string(i) +
                                 " is none of \\\\ \\\" \\n \\r \\0 \\x00");
    }
    ++i;
  }
  return out;
}

std::string recorded_config(const Config& cfg) {
  // format_config()'s lines, one per key in config_keys() order, quoted where
  // a config file needs it, of the keys whose values differ from the defaults.
  std::istringstream now(format_config(cfg)), base(format_config(Config{}));
  std::string out;
  for (const ConfigKey& k : config_keys()) {
    const std::string name = k.name;
    if (get_config_value(cfg, k).find_first_of("\n\r") != std::string::npos)
      throw std::runtime_error("config: " + name + " holds a line break, which a config file cannot carry");
    std::string line, default_line;
    std::getline(now, line);
    std::getline(base, default_line);
    if (line != default_line && name != "SEED" && name != "RUN_ID" && name != "LOG_DIR") out += line + "\n";
  }
  return out;
}

std::string submission_script(const std::string& config_text, const std::string& archive_xz) {
  // Inside """...""" every quote and backslash is escaped (recorded_config() has no CR or NUL).
  std::string config = replace_all(replace_all(config_text, "\\", "\\\\"), "\"", "\\\"");
  // No commit here: a tree built from the archive has none, and must write the same script.
  std::string head = replace_all(kHead, "%VERSION%", PGOLF_VERSION);
  return head + "C=\"\"\"" + config + "\"\"\"" + kPayloadStart + latin1_literal(archive_xz) + "\"\n" + kTail;
}

std::string submission_script(const Config& cfg) {
  // xz -9e of the tree takes a second: each set of files is compressed once per process.
  static std::map<std::string, std::string> archives;
  static std::mutex mutex;
  const auto files = counted_sources(cfg);
  std::string paths;
  for (const auto& [path, data] : files) paths += path + "\n";
  std::lock_guard<std::mutex> lock(mutex);
  auto it = archives.find(paths);
  if (it == archives.end()) it = archives.emplace(paths, code_archive(Codec::Xz, files).bytes).first;
  return submission_script(recorded_config(cfg), it->second);
}

std::string script_archive_tar(const std::string& script, const std::string& origin) {
  // The literal runs from P=" to the first quote that no backslash escapes.
  auto end = script.find(kPayloadStart);
  const auto begin = end == std::string::npos ? end : end + sizeof kPayloadStart - 1;
  for (end = begin; end < script.size() && script[end] != '"'; ++end)
    if (script[end] == '\\') ++end;
  if (end >= script.size())
    throw std::runtime_error("'" + origin + "': no code archive in it (a train_gpt.py of pgolf has a line P=\"...\")");
  try {
    return decompress_at_most(latin1_literal_value(std::string_view(script).substr(begin, end - begin)), Codec::Xz,
                              std::uint64_t{1} << 30);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("'" + origin + "': cannot read the code archive in it: " + e.what());
  }
}

}  // namespace pgolf
