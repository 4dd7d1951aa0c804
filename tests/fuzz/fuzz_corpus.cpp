// Feeds a JSONL corpus file (corpus.h): one JSON object per line, read to the
// end with DocumentReader.
#include <exception>
#include <string>

#include "fuzz_input.h"
#include "pgolf/data/corpus.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const pgolf::fuzz::InputFile file(data, size, ".jsonl");
  try {
    pgolf::CorpusOptions opts;
    opts.inputs = {file.path()};
    pgolf::DocumentReader reader(opts);
    std::string doc;
    while (reader.next(doc)) {
    }
  } catch (const std::exception&) {
  }
  return 0;
}
