// Feeds a .safetensors weights file (weights.h): header length, JSON header
// and tensor bytes, read with load_safetensors.
#include <exception>

#include "fuzz_input.h"
#include "pgolf/model/weights.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const pgolf::fuzz::InputFile file(data, size);
  try {
    pgolf::load_safetensors(file.path());
  } catch (const std::exception&) {
  }
  return 0;
}
