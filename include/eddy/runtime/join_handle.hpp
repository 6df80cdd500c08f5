// eddy::join_handle: what a task holds for a task it spawned.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <eddy/runtime/detail/await_traits.hpp>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/task.hpp>

namespace eddy {

namespace detail {

/// The finished task's result, moved out (or its exception rethrown); marks it
/// taken so no one reports it as unhandled. The one place a result is extracted.
template <class T>
decltype(auto) take_result(task_core* c) {
  c->result_taken_ = true;
  auto* p = static_cast<promise<T>*>(c->promise_);
  if constexpr (std::is_void_v<T> || std::is_reference_v<T>) {
    return p->result();
  } else {
    return T(std::move(*p).result());
  }
}

}  // namespace detail

/// The result of `spawn`: await it for the task's result, `cancel()` it, or
/// `detach()` it.
///
/// Dropping a join handle detaches the task (as tokio's JoinHandle): it keeps
/// running, and if it fails with an exception nobody retrieved, the exception goes
/// to the loop's exception handler.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** awaiting is a cancellation point; cancelling the awaiting
/// task while it waits forwards the cancellation to the joined task (as awaiting an
/// asyncio Task does) and keeps waiting until that task has finished. A cancel is
/// forwarded only while the joined task has none it has not yet seen: one that
/// would merge into an earlier cancel (this wait's, or `cancel()`'s), or that
/// comes after the joined task finished, stays with the awaiting task (the await
/// still returns the joined task's outcome) and is delivered at its next
/// cancellation point. Once the joined task has taken its cancel (caught
/// `cancelled_error` and awaits again), the next one is forwarded to it.
///
/// ```cpp
/// auto h = eddy::spawn(fetch());
/// h.cancel();
/// try { co_await h; } catch (const eddy::cancelled_error&) {}
/// ```
template <class T>
class [[nodiscard]] join_handle {
 public:
  join_handle() noexcept = default;
  explicit join_handle(detail::task_core* c) noexcept : c_(c) {}
  join_handle(join_handle&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      if (c_) detail::release_handle(c_);
      c_ = std::exchange(o.c_, nullptr);
    }
    return *this;
  }
  ~join_handle() {
    if (c_) detail::release_handle(c_);
  }

  /// Requests cancellation; the task sees cancelled_error at its current or next
  /// await. No effect once the task has finished.
  void cancel() noexcept {
    if (c_) c_->request_cancel();
  }
  /// True once the task has finished (successfully or not).
  bool done() const noexcept { return c_ && c_->done_; }
  bool valid() const noexcept { return c_ != nullptr; }
  /// Lets the task run on without this handle.
  void detach() noexcept {
    if (c_) detail::release_handle(std::exchange(c_, nullptr));
  }

  struct awaiter {
    detail::task_core* c;
    detail::task_core* me = nullptr;
    detail::cancel_hook hook{&forward_cancel, [](const detail::cancel_hook*, detail::wait_description& d) noexcept {
                               d.kind = "a spawned task (join)";
                             }};
    bool precancelled = false;
    bool holds_ref = false;

    bool await_ready() {
      if (c == nullptr) throw std::logic_error("eddy::join_handle: awaiting an empty handle");
      if (c->done_) return true;
      if (detail::consume_pending_cancel()) {
        precancelled = true;
        return true;
      }
      return false;
    }
    void await_suspend(std::coroutine_handle<> h) {
      if (c->waiter_) throw std::logic_error("eddy::join_handle: a task has one awaiter");
      me = detail::current_core();
      c->waiter_ = h;
      c->waiter_core_ = me;
      ++c->refs_;  // the handle may be dropped while we wait
      holds_ref = true;
      if (me != nullptr) me->hook_ = &hook;
    }
    decltype(auto) await_resume() {
      if (me != nullptr) me->hook_ = nullptr;
      if (precancelled) throw cancelled_error{};
      struct unref {
        detail::task_core* c;
        bool on;
        ~unref() {
          if (on) detail::release_handle(c);
        }
      } u{c, holds_ref};
      return detail::take_result<T>(c);
    }
    static bool forward_cancel(detail::cancel_hook* h) noexcept {
      awaiter* self = reinterpret_cast<awaiter*>(reinterpret_cast<char*>(h) - offsetof(awaiter, hook));
      // A joined task that finished, or that has a cancel it has not yet seen
      // (from this wait or from anyone else: `h.cancel(); co_await h;`), cannot
      // carry another: it would merge into the first. Returning false leaves it
      // pending on the awaiting task. (Forwarding it lost it: a server's second
      // signal, landing while its accept loop wound down, went nowhere.)
      if (self->c->done_ || self->c->cancel_undelivered()) return false;
      self->c->request_cancel();
      return true;
    }
  };
  awaiter operator co_await() const noexcept { return awaiter{c_}; }

  /// The result of a finished task, without awaiting: its value (moved out) or
  /// its exception rethrown. Throws std::logic_error if the task has not finished.
  decltype(auto) result() {
    if (!done()) throw std::logic_error("eddy::join_handle::result: the task has not finished");
    return detail::take_result<T>(c_);
  }

  /// detail, not API: the spawned task's state (loop::run_until_done).
  detail::task_core* core() const noexcept { return c_; }

 private:
  detail::task_core* c_ = nullptr;
};

}  // namespace eddy
