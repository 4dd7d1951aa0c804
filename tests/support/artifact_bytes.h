// Artifact tests: a small model config and byte-level edits of artifact files.
#pragma once
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <zlib.h>
#include <cstring>
#include "helpers.h"
#include "pgolf/export/artifact.h"
#include "pgolf/core/io.h"

namespace pgolf::test {

inline Config small_config() {
  Config c = test::small_model(2, 128);
  c.model.vocab_size = 256;
  c.export_.quant_passthrough_numel = 8192;  // so the 128x128 matrices are quantised
  return c;
}

inline ArtifactError::Kind read_error(const std::string& path, std::string* msg) {
  try {
    read_artifact(path);
  } catch (const ArtifactError& e) {
    *msg = e.what();
    return e.kind;
  }
  ADD_FAILURE() << "no error for " << path;
  return ArtifactError::BadPayload;
}

inline void put32(std::string& b, std::size_t off, std::uint32_t v) { std::memcpy(b.data() + off, &v, 4); }
inline void put64(std::string& b, std::size_t off, std::uint64_t v) { std::memcpy(b.data() + off, &v, 8); }
inline void fix_header_crc(std::string& b) {
  put32(b, 36, static_cast<std::uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(b.data()), 36)));
}

}  // namespace pgolf::test
