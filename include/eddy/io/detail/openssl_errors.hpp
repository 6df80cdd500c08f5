// Turning OpenSSL's per-thread error queue into eddy's tls_error messages.
// Detail: used by io/tls and eddyloop's TLS transport, not API.
// Thread safety: each call reads the calling thread's own queue. Cancel safety: n/a.
#pragma once

#include <eddy/io/tls_error.hpp>
#include <string>

namespace eddy::detail {

// Drains this thread's OpenSSL error queue: the reasons joined by "; " (lib:reason,
// as `openssl errstr` words them), and the first packed code in `first`.
std::string drain_openssl_errors(unsigned long* first = nullptr);

// Throws tls_error(configuration, "<what>: <queued reasons>").
[[noreturn]] void throw_configuration(const std::string& what);

}  // namespace eddy::detail
