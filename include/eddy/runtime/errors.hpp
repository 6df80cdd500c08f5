// The exceptions eddy throws.
#pragma once

#include <chrono>
#include <exception>
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
/// Its message says what timed out and after how long, e.g. "eddy: connect to
/// 10.0.0.1:80 timed out after 2 s"; `operation()` and `after()` give the parts.
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// catch (const eddy::timeout_error& e) { std::fprintf(stderr, "%s\n", e.what()); }
/// ```
class timeout_error : public std::runtime_error {
 public:
  timeout_error() : std::runtime_error("eddy: operation timed out") {}
  /// `operation` names what timed out ("" for "operation"); `after` is the limit.
  timeout_error(const std::string& operation, std::chrono::nanoseconds after)
      : std::runtime_error("eddy: " + (operation.empty() ? std::string("operation") : operation) +
                           " timed out after " + format_duration(after)),
        operation_(operation),
        after_(after) {}
  /// What timed out, as given to with_timeout ("" if not named).
  const std::string& operation() const noexcept { return operation_; }
  /// The time limit that passed (zero if unknown).
  std::chrono::nanoseconds after() const noexcept { return after_; }

  /// "250 ms", "2 s", "1.5 s", "20 us", "3 ns": the largest unit that keeps it short.
  static std::string format_duration(std::chrono::nanoseconds d) {
    const long long ns = d.count();
    const auto fmt = [](long long v, long long unit, const char* name) {
      std::string out = std::to_string(v / unit);
      const long long frac = (v % unit) * 10 / unit;  // one decimal, truncated
      if (frac != 0) {  // appended piece by piece: GCC 12 -O3 warns on "." + string
        out += '.';
        out += std::to_string(frac);
      }
      out += ' ';
      out += name;
      return out;
    };
    if (ns >= 60'000'000'000LL && ns % 60'000'000'000LL == 0) return std::to_string(ns / 60'000'000'000LL) + " min";
    if (ns >= 1'000'000'000LL) return fmt(ns, 1'000'000'000LL, "s");
    if (ns >= 1'000'000LL) return fmt(ns, 1'000'000LL, "ms");
    if (ns >= 1'000LL) return fmt(ns, 1'000LL, "us");
    return std::to_string(ns) + " ns";
  }

 private:
  std::string operation_;
  std::chrono::nanoseconds after_{0};
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

namespace detail {

/// True if `e` holds an eddy::cancelled_error (false for an empty pointer).
inline bool is_cancellation(const std::exception_ptr& e) noexcept {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const cancelled_error&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace detail

}  // namespace eddy
