// eddy::outcome: how a task ended — its value, or the exception it ended with —
// as a value to inspect rather than an exception to catch. What when_all_settled
// and join_set hand back (asyncio's gather(return_exceptions=True), tokio's
// Result<T, JoinError>).
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/join_handle.hpp>

namespace eddy {

/// The end of one task: a value (std::monostate stands for void) or an exception.
/// Inspect it with `ok()`, `cancelled()`, `failed()`; `value()` returns the value
/// or rethrows the exception, `error()` gives the exception itself.
///
/// **Thread safety:** a value type (a move-only one when T is).
/// **Cancel safety:** n/a.
///
/// ```cpp
/// auto [a, b] = co_await eddy::when_all_settled(fetch(x), fetch(y));
/// if (a.ok()) use(a.value());
/// else if (a.failed()) std::fprintf(stderr, "fetch x: %s\n", a.message().c_str());
/// ```
template <class T>
class outcome {
  static_assert(!std::is_reference_v<T>, "eddy::outcome: a task returning a reference has no outcome");

 public:
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

  /// A value.
  template <class... A>
  explicit outcome(std::in_place_t, A&&... a) : v_(std::in_place_index<0>, std::forward<A>(a)...) {}
  /// An exception; throws std::invalid_argument for a null exception_ptr.
  explicit outcome(std::exception_ptr e) : v_(std::in_place_index<1>, std::move(e)) {
    if (!std::get<1>(v_)) throw std::invalid_argument("eddy::outcome: null exception_ptr");
    cancelled_ = detail::is_cancellation(std::get<1>(v_));
  }

  /// The task returned normally.
  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  /// The task ended with cancelled_error.
  bool cancelled() const noexcept { return cancelled_; }
  /// The task ended with an exception other than cancelled_error.
  bool failed() const noexcept { return !ok() && !cancelled_; }
  /// The exception, or nullptr when ok().
  std::exception_ptr error() const noexcept { return ok() ? nullptr : std::get<1>(v_); }
  /// The value; rethrows the exception when there is none.
  value_type& value() & {
    if (!ok()) std::rethrow_exception(std::get<1>(v_));
    return std::get<0>(v_);
  }
  const value_type& value() const& {
    if (!ok()) std::rethrow_exception(std::get<1>(v_));
    return std::get<0>(v_);
  }
  value_type&& value() && {
    if (!ok()) std::rethrow_exception(std::get<1>(v_));
    return std::get<0>(std::move(v_));
  }
  /// "ok", "cancelled", or the exception's what() (for logs).
  std::string message() const {
    if (ok()) return "ok";
    if (cancelled_) return "cancelled";
    try {
      std::rethrow_exception(std::get<1>(v_));
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "non-standard exception";
    }
  }

 private:
  std::variant<value_type, std::exception_ptr> v_;
  bool cancelled_ = false;
};

namespace detail {

/// The outcome of the finished task behind `c`; marks its result taken, so its
/// exception is never reported as unhandled.
template <class T>
outcome<T> settle(task_core* c) {
  if (c->promise_->error_) {
    c->result_taken_ = true;
    return outcome<T>(c->promise_->error_);
  }
  if constexpr (std::is_void_v<T>) {
    take_result<void>(c);
    return outcome<T>(std::in_place);
  } else {
    return outcome<T>(std::in_place, take_result<T>(c));
  }
}

}  // namespace detail

}  // namespace eddy
