// Feeds a whole submission artifact (artifact.h): header, codec, compressed
// payload and tensor records, read with read_artifact.
#include <zlib.h>

#include <cstring>
#include <exception>
#include <vector>

#include "fuzz_input.h"
#include "pgolf/export/artifact.h"

namespace {

// Stores a correct CRC-32 of [begin, begin + n) at `at`.
void put_crc(std::vector<std::uint8_t>& b, std::size_t at, std::size_t begin, std::size_t n) {
  const auto crc = static_cast<std::uint32_t>(::crc32(0L, b.data() + begin, static_cast<uInt>(n)));
  std::memcpy(b.data() + at, &crc, sizeof crc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The fuzzer cannot forge checksums, so nearly every mutation would stop at
  // them: the harness writes both CRCs (payload at 32, header at 36) correct,
  // and the codecs and the record parser behind them get the mutated bytes.
  std::vector<std::uint8_t> bytes(data, data + size);
  if (bytes.size() >= pgolf::kArtifactHeaderBytes) {
    put_crc(bytes, 32, pgolf::kArtifactHeaderBytes, bytes.size() - pgolf::kArtifactHeaderBytes);
    put_crc(bytes, 36, 0, 36);
  }
  const pgolf::fuzz::InputFile file(bytes.data(), bytes.size());
  try {
    pgolf::read_artifact(file.path());
  } catch (const std::exception&) {
  }
  return 0;
}
