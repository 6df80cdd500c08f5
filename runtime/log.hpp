// Debug logging to stderr, enabled with EDDY_LOG=debug. Used for decisions a user
// may need to see (which backend, and why), never on hot paths.
#pragma once

namespace eddy::detail {

bool debug_enabled() noexcept;
[[gnu::format(printf, 1, 2)]] void log_debug(const char* fmt, ...) noexcept;

}  // namespace eddy::detail
