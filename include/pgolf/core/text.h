// printf-style formatting into a std::string, for log lines and reports that
// mix numbers with fixed precision ("%.4f") into text.
#pragma once

#include <cstdio>
#include <string>

namespace pgolf {

template <typename... Args>
std::string strprintf(const char* fmt, Args... args) {
  std::string out(static_cast<std::size_t>(std::snprintf(nullptr, 0, fmt, args...)), '\0');
  std::snprintf(out.data(), out.size() + 1, fmt, args...);
  return out;
}

}  // namespace pgolf
