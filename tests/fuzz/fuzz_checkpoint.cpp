// Feeds a training checkpoint (checkpoint.h): a .safetensors file whose
// metadata holds the step, the schedule's clock, the data position and the
// configuration, read with load_checkpoint.
#include <exception>

#include "fuzz_input.h"
#include "pgolf/train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const pgolf::fuzz::InputFile file(data, size);
  try {
    pgolf::load_checkpoint(file.path());
  } catch (const std::exception&) {
  }
  return 0;
}
