// The counted code of a submission as the challenge wants it: one train_gpt.py
// holding pgolf's code archive (code_archive.h, xz, which Python's standard
// library reads) as raw bytes in a latin-1 string literal, and the run's
// configuration. Run in a records folder, under torchrun or plain python, it
// unpacks the archive, builds pgolf against the installed PyTorch and trains
// that configuration; its size is the code the budget counts (docs/RULES.md).
#pragma once
#include <string>
#include <string_view>

#include "pgolf/config/config.h"

namespace pgolf {

// The body of a Python string literal "..." whose value, in a file read as
// latin-1 (a coding:latin-1 comment on its first line), is `bytes`, one
// character per byte: P.encode("latin-1") gives `bytes` back. Every byte stands
// for itself but the five a literal cannot hold raw: backslash, the quote, LF,
// CR and NUL, written \\ \" \n \r and \0 (\x00 before an octal digit, which
// \0 would take as part of its number). About 2% longer than `bytes`, where
// base85 is 25%.
std::string latin1_literal(std::string_view bytes);
// The inverse for those escapes; throws on any other, or on a raw quote, line
// break or NUL.
std::string latin1_literal_value(std::string_view body);

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
