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

constexpr char kB85[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";

// The Python around the configuration (C) and the archive (P). The build
// folder is named by a CRC of both, so an edited script never runs a stale
// binary; local rank 0 builds while the other ranks of the node wait for it.
constexpr char kHead[] =
    "# pgolf %VERSION%: the counted code of this submission. Unpacks pgolf's C++ source,\n"
    "# builds it against this Python's PyTorch (cmake, a C++17 compiler and the libraries README.md lists)\n"
    "# and trains the configuration C; the environment and --set KEY=VALUE arguments override it:\n"
    "#   SEED=42 torchrun --standalone --nproc_per_node=8 train_gpt.py\n"
    "import base64,io,lzma,os,shutil,subprocess as s,sys,tarfile,time,zlib\n";
constexpr char kTail[] =
    "d=os.path.abspath(os.environ.get(\"PGOLF_BUILD_DIR\",\"pgolf_build\"))+\"/%08x\"%zlib.crc32((C+P).encode());b=d+\"/b/pgolf\"\n"
    "if os.environ.get(\"LOCAL_RANK\",\"0\")==\"0\"and not os.path.exists(d+\"/built\"):\n"
    " import torch\n"
    " t=tarfile.open(fileobj=io.BytesIO(lzma.decompress(base64.b85decode(P))))\n"
    " t.extractall(d+\"/src\",**({\"filter\":\"data\"}if hasattr(tarfile,\"data_filter\")else{}))\n"
    " open(d+\"/config.env\",\"w\").write(C)\n"
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

// Each group of 4 bytes, read as a big-endian number n, is written as the 5
// digits of n in base 85, most significant first. A last group of k < 4
// bytes is padded with zeros and only its first k + 1 digits kept.
std::string b85encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 3) / 4 * 5);
  for (std::size_t i = 0; i < bytes.size(); i += 4) {
    const std::size_t k = std::min<std::size_t>(4, bytes.size() - i);
    std::uint32_t n = 0;
    for (std::size_t j = 0; j < 4; ++j) n = n << 8 | (j < k ? static_cast<unsigned char>(bytes[i + j]) : 0u);
    char digits[5];
    for (int j = 4; j >= 0; --j, n /= 85) digits[j] = kB85[n % 85];
    out.append(digits, k + 1);
  }
  return out;
}

// The inverse: a short last group is padded with the largest digit ('~'),
// so that its kept bytes come out exact, and the padding bytes dropped.
std::string b85decode(std::string_view text) {
  std::int8_t value[256];
  std::fill(std::begin(value), std::end(value), -1);
  for (int i = 0; i < 85; ++i) value[static_cast<unsigned char>(kB85[i])] = static_cast<std::int8_t>(i);
  std::string out;
  out.reserve(text.size() / 5 * 4 + 4);
  for (std::size_t i = 0; i < text.size(); i += 5) {
    const std::size_t k = std::min<std::size_t>(5, text.size() - i);
    if (k == 1) throw std::runtime_error("base85: a last group of one character");
    std::uint64_t n = 0;
    for (std::size_t j = 0; j < 5; ++j) {
      const int v = j < k ? value[static_cast<unsigned char>(text[i + j])] : 84;
      if (v < 0) throw std::runtime_error("base85: character " + std::to_string(i + j) + " is outside the alphabet");
      n = n * 85 + static_cast<std::uint64_t>(v);
    }
    if (n > 0xffffffffu) throw std::runtime_error("base85: group at character " + std::to_string(i) + " exceeds 2^32");
    for (std::size_t j = 0; j + 1 < k; ++j) out.push_back(static_cast<char>(n >> (24 - 8 * j) & 0xff));
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
  // Inside """...""" every quote and backslash is escaped; base85 has neither.
  std::string config = replace_all(replace_all(config_text, "\\", "\\\\"), "\"", "\\\"");
  // No commit here: a tree built from the archive has none, and must write the same script.
  std::string head = replace_all(kHead, "%VERSION%", PGOLF_VERSION);
  return head + "C=\"\"\"" + config + "\"\"\"" + kPayloadStart + b85encode(archive_xz) + "\"\n" + kTail;
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
  const auto start = script.find(kPayloadStart);
  const auto end = start == std::string::npos ? start : script.find('"', start + sizeof kPayloadStart - 1);
  if (end == std::string::npos)
    throw std::runtime_error("'" + origin + "': no code archive in it (a train_gpt.py of pgolf has a line P=\"...\")");
  try {
    const std::string begin = kPayloadStart;
    return decompress_at_most(b85decode(std::string_view(script).substr(start + begin.size(), end - start - begin.size())),
                              Codec::Xz, std::uint64_t{1} << 30);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("'" + origin + "': cannot read the code archive in it: " + e.what());
  }
}

}  // namespace pgolf
