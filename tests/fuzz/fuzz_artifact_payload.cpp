// Feeds the artifact's uncompressed payload (artifact.h): the tensor records
// that read_artifact decodes, parsed from memory with deserialize_tensors.
// The artifact target reaches them only through a codec; this one mutates
// the records themselves.
#include <exception>
#include <string>

#include "pgolf/export/artifact.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string payload(reinterpret_cast<const char*>(data), size);
  try {
    pgolf::deserialize_tensors(payload, "fuzz");
  } catch (const std::exception&) {
  }
  return 0;
}
