// Feeds a --config file (config.h): KEY=VALUE lines with comments, quotes and
// `export `, read with apply_config_file and checked with validate_config.
// A file that reads must also survive format_config: written out and read
// back, it gives the same configuration (config.h promises that).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "fuzz_input.h"
#include "pgolf/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pgolf::Config cfg;
  {
    const pgolf::fuzz::InputFile file(data, size);
    try {
      pgolf::apply_config_file(cfg, file.path());
    } catch (const std::exception&) {
      return 0;
    }
  }
  try {
    pgolf::validate_config(cfg);
  } catch (const std::exception&) {
  }
  const std::string formatted = pgolf::format_config(cfg);
  const pgolf::fuzz::InputFile again(reinterpret_cast<const std::uint8_t*>(formatted.data()), formatted.size());
  pgolf::Config back;
  try {
    pgolf::apply_config_file(back, again.path());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "format_config wrote a file that does not read back: %s\n", e.what());
    std::abort();
  }
  if (pgolf::format_config(back) != formatted) {
    std::fprintf(stderr, "format_config round trip changed the configuration:\n%s", formatted.c_str());
    std::abort();
  }
  return 0;
}
