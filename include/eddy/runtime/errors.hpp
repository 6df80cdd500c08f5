// The exceptions eddy throws.
#pragma once

#include <stdexcept>
#include <string>

namespace eddy {

/// Thrown into a task at the await point where its cancellation is delivered.
///
/// It deliberately does **not** derive from std::exception (as asyncio's
/// CancelledError derives from BaseException, not Exception): a
/// `catch (const std::exception&)` written for ordinary errors must not swallow a
/// cancellation. Catch it by name, clean up, and rethrow.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { co_await eddy::sleep_for(1s); }
/// catch (const eddy::cancelled_error&) { cleanup(); throw; }
/// ```
struct cancelled_error {
  const char* what() const noexcept { return "eddy: operation cancelled"; }
};

/// Thrown by `with_timeout` when the deadline passed before the operation finished.
/// **Thread safety:** a value type. **Cancel safety:** n/a.
class timeout_error : public std::runtime_error {
 public:
  timeout_error() : std::runtime_error("eddy: operation timed out") {}
};

/// Using a loop (or something bound to one) after `loop::close()`.
/// **Thread safety:** a value type. **Cancel safety:** n/a.
class loop_closed_error : public std::logic_error {
 public:
  explicit loop_closed_error(const std::string& what)
      : std::logic_error("eddy: loop is closed: " + what) {}
};

/// `channel::send` on a closed channel.
/// **Thread safety:** a value type. **Cancel safety:** n/a.
class channel_closed_error : public std::runtime_error {
 public:
  channel_closed_error() : std::runtime_error("eddy: channel is closed") {}
};

}  // namespace eddy
