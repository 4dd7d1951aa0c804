// Feeds a token shard (data.h): the 1024-byte header and the uint16 body,
// opened with Shard and checked against the default vocabulary.
#include <exception>

#include "fuzz_input.h"
#include "pgolf/data/data.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const pgolf::fuzz::InputFile file(data, size);
  try {
    const pgolf::Shard shard(file.path());
    shard.check_token_ids(1024);
  } catch (const std::exception&) {
  }
  return 0;
}
