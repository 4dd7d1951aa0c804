// Shared test helpers: a scratch folder and running the pgolf binary.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

#include "pgolf/config.h"
#include "pgolf/model.h"

namespace pgolf::test {

// A small valid model: `layers` blocks of width `dim`, 2 query heads sharing one KV head.
inline Config small_model(std::int64_t layers, std::int64_t dim) {
  Config c;
  c.num_layers = layers;
  c.model_dim = dim;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  return c;
}

// Replaces every parameter of `m` by Gaussian values of std `scale` (plus 1
// for the scales), so no path through the model is trivially zero.
inline void randomise(GPT& m, std::uint64_t seed, double scale = 0.3) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& p : m.parameters())
    p.tensor.detach().copy_(at::normal(0.0, scale, p.tensor.sizes(), gen, at::kDouble) +
                            (p.name.find("scale") != std::string::npos ? 1.0 : 0.0));
}

// A fresh folder under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pgolf-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

// Runs a bash command line, capturing its output.
inline CommandResult run_shell(const std::string& command) {
  TempDir out;
  std::ofstream(out.file("cmd.sh")) << command << "\n";
  std::string cmd = "bash " + out.file("cmd.sh") + " > " + out.file("log") + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(out.file("log"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, text};
}

// Runs the pgolf binary built alongside the tests with `args` (shell syntax).
inline CommandResult run_pgolf(const std::string& args) { return run_shell(std::string(PGOLF_BINARY) + " " + args); }

}  // namespace pgolf::test
