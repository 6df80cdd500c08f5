#include "runtime/log.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace eddy::detail {

bool debug_enabled() noexcept {
  static const bool on = [] {
    const char* v = std::getenv("EDDY_LOG");
    return v != nullptr && std::strcmp(v, "debug") == 0;
  }();
  return on;
}

void log_debug(const char* fmt, ...) noexcept {
  if (!debug_enabled()) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "eddy[debug]: %s\n", buf);
}

}  // namespace eddy::detail
