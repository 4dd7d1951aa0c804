// printf-style formatting into a std::string, for log lines and reports that
// mix numbers with fixed precision ("%.4f") into text. Declared with the
// printf format attribute, so the compiler checks every call's arguments
// against its format string (-Wformat, in -Wall).
#pragma once

#include <string>

namespace pgolf {

std::string strprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace pgolf
