// eddy::task<T>: the lazy coroutine type everything in eddy is written in.
//
// Shape after cppcoro's task: lazy (starts when awaited or spawned), single
// awaiter, value-or-exception result, and symmetric transfer at the final suspend
// point so a million synchronously completing awaits in a row use constant stack.
#pragma once

// eddy's headers are C++20 (coroutines, concepts) and work in any later standard.
// Its pkg-config file deliberately adds no -std flag (that would override the
// user's own choice, e.g. -std=c++23), so say it plainly here instead.
#if __cplusplus < 202002L
#error "eddy needs C++20 or later: compile with -std=c++20 (or -std=c++23, ...)"
#endif

#include <coroutine>
#include <exception>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <eddy/runtime/detail/frame_allocator.hpp>
#include <eddy/runtime/detail/task_core.hpp>

namespace eddy {

template <class T = void>
class task;

namespace detail {

// How a task hands control back to its awaiter. Symmetric transfer alone is not
// enough: GCC turns the returned-handle resume into a tail call only when
// optimizing, so a debug or sanitizer build would grow the stack by one frame per
// synchronously completing await and overflow in a loop of a million. So the
// awaiter starts the child with a plain resume() from await_suspend; a child that
// finishes before suspending marks itself `completed_inline` and returns to that
// call, and await_suspend returns false: the parent continues without any frame
// left behind. A child that suspended resumes its parent later by symmetric
// transfer, which nests at most once per level of awaiting, never per iteration.
enum class start_state : unsigned char { idle, starting_inline, completed_inline };

struct promise_base {
  std::coroutine_handle<> continuation_{};
  // Set when this frame is the root of a spawned task. The core is a block of its
  // own from the same per-thread pool as frames (loop::start), freed with the
  // frame: a task that is merely awaited carries no core (it did, 152 bytes in
  // every frame, while the core lived in the promise).
  task_core* core_ = nullptr;
  std::exception_ptr error_{};
  start_state start_ = start_state::idle;

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      promise_base& p = h.promise();
      if (p.continuation_) {
        if (p.start_ == start_state::starting_inline) {
          p.start_ = start_state::completed_inline;
          return std::noop_coroutine();
        }
        return p.continuation_;
      }
      return on_root_done(p.core_);
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  final_awaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

  void rethrow_if_error() const {
    if (error_) std::rethrow_exception(error_);
  }
};

template <class T>
struct promise final : promise_base {
  promise() noexcept {}
  ~promise() {
    if (has_value_) value_.~T();
  }
  task<T> get_return_object() noexcept;

  template <class U = T>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    ::new (static_cast<void*>(std::addressof(value_))) T(std::forward<U>(v));
    has_value_ = true;
  }

  T& result() & {
    rethrow_if_error();
    return value_;
  }
  T&& result() && {
    rethrow_if_error();
    return std::move(value_);
  }

 private:
  union {
    T value_;
  };
  bool has_value_ = false;
};

template <class T>
struct promise<T&> final : promise_base {
  task<T&> get_return_object() noexcept;
  void return_value(T& v) noexcept { value_ = std::addressof(v); }
  T& result() {
    rethrow_if_error();
    return *value_;
  }

 private:
  T* value_ = nullptr;
};

template <>
struct promise<void> final : promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void result() { rethrow_if_error(); }
};

[[noreturn]] void throw_empty_task();

}  // namespace detail

/// A lazy coroutine producing a `T` (or `void`, or a reference `T&`).
///
/// A task does nothing until it is awaited (`co_await t`) or spawned
/// (`eddy::spawn(std::move(t))`). It has exactly one awaiter. Its result is a value
/// or the exception the coroutine threw, rethrown at the await. Frames come from a
/// per-thread recycling allocator; destroying a task that never started frees its
/// frame.
///
/// **Thread safety:** a task is a plain move-only object; it may be created on one
/// thread and awaited on another, but not used from two threads at once. Once
/// started it runs on the loop that awaits or spawns it.
///
/// **Cancel safety:** awaiting a task is not itself a suspension point; the task's
/// own awaits are. Cancelling the awaiting task cancels whatever the child is
/// suspended on (they share one cancellation state).
///
/// ```cpp
/// eddy::task<int> answer() { co_await eddy::yield_now(); co_return 42; }
/// eddy::task<> caller() { int v = co_await answer(); }
/// ```
template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::promise<T>;
  using value_type = T;
  using handle_type = std::coroutine_handle<promise_type>;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  /// True if this task holds a coroutine (not default-constructed or moved-from).
  bool valid() const noexcept { return static_cast<bool>(h_); }
  /// True once the coroutine has finished.
  bool done() const noexcept { return h_ && h_.done(); }

  auto operator co_await() & noexcept { return awaiter<false>{h_}; }
  auto operator co_await() && noexcept { return awaiter<true>{h_}; }

  /// Gives up ownership of the frame (used by spawn).
  handle_type release() noexcept { return std::exchange(h_, {}); }

 private:
  template <bool Move>
  struct awaiter {
    handle_type h;
    bool await_ready() const {
      if (!h) detail::throw_empty_task();
      return h.done();
    }
    bool await_suspend(std::coroutine_handle<> cont) noexcept {
      auto& p = h.promise();
      p.continuation_ = cont;
      p.start_ = detail::start_state::starting_inline;
      h.resume();
      if (p.start_ == detail::start_state::completed_inline) return false;
      p.start_ = detail::start_state::idle;
      return true;
    }
    // co_await on an rvalue task yields T by value (moved out of the frame), on an
    // lvalue task a reference to the stored value.
    using result_t = std::conditional_t<Move && !std::is_reference_v<T> && !std::is_void_v<T>, T,
                                        std::add_lvalue_reference_t<T>>;
    result_t await_resume() {
      if constexpr (Move && !std::is_reference_v<T> && !std::is_void_v<T>) {
        return std::move(h.promise()).result();
      } else {
        return h.promise().result();
      }
    }
  };

  handle_type h_{};
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<promise<T>>::from_promise(*this)};
}
template <class T>
task<T&> promise<T&>::get_return_object() noexcept {
  return task<T&>{std::coroutine_handle<promise<T&>>::from_promise(*this)};
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<promise<void>>::from_promise(*this)};
}
}  // namespace detail

}  // namespace eddy
