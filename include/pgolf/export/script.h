// The counted code of a submission as the challenge wants it: one train_gpt.py
// holding pgolf's code archive (code_archive.h, xz, which Python's standard
// library reads) in base85, and the run's configuration. Run in a records
// folder, under torchrun or plain python, it unpacks the archive, builds pgolf
// against the installed PyTorch and trains that configuration; its size is the
// code the budget counts (docs/RULES.md).
#pragma once
#include <string>
#include <string_view>

#include "pgolf/config/config.h"

namespace pgolf {

// Python's base64.b85encode / b85decode (RFC 1924's alphabet, big-endian
// groups of 4 bytes to 5 characters; a short last group gives as many
// characters as it has bytes plus one). b85decode throws on a character
// outside the alphabet or a group past 2^32.
std::string b85encode(std::string_view bytes);
std::string b85decode(std::string_view text);

// The keys of `cfg` that differ from the defaults, as config-file lines (the
// form of format_config()), less the ones each run of a submission sets for
// itself: SEED, RUN_ID and LOG_DIR.
std::string recorded_config(const Config& cfg);

// train_gpt.py for `config_text` (recorded_config()) and the xz code archive
// `archive_xz`.
std::string submission_script(const std::string& config_text, const std::string& archive_xz);
// The same with this binary's code archive for `cfg` (counted_sources(cfg):
// the optional components it does not use left out).
std::string submission_script(const Config& cfg);

// The code archive inside a train_gpt.py, decompressed to its tar; throws,
// naming `origin`, when the text holds none.
std::string script_archive_tar(const std::string& script, const std::string& origin);

}  // namespace pgolf
