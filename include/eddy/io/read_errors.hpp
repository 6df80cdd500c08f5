// The errors of reads that promised a size: eddy::stream's and the sockets'
// read_exact / read_to_end.
#pragma once

#include <stdexcept>
#include <string>

namespace eddy {

/// A read or write would pass one of the stream's size limits (a line longer than
/// the limit, a write buffer past its hard cap). The stream stays usable: for
/// reads, nothing was consumed.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { auto line = co_await s.read_line(1024); }
/// catch (const eddy::stream_limit_error& e) { co_await reply_413_and_close(); }
/// ```
class stream_limit_error : public std::length_error {
 public:
  using std::length_error::length_error;
};

/// The stream ended before `read_exact` / `read_until` had what it needed. `partial`
/// holds what was read (and consumed) before the end.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { auto hdr = co_await s.read_exact(16); }
/// catch (const eddy::incomplete_read_error& e) { log("short header: %zu bytes", e.partial.size());
/// }
/// ```
class incomplete_read_error : public std::runtime_error {
 public:
  incomplete_read_error(const std::string& what, std::string partial)
      : std::runtime_error(what), partial(std::move(partial)) {}
  std::string partial;
};

}  // namespace eddy
