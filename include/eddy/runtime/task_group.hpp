// eddy::task_group: structured concurrency with asyncio TaskGroup semantics.
#pragma once

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include <eddy/runtime/detail/wait_list.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/task.hpp>

namespace eddy {

namespace detail {
struct task_group_access;
}

/// A set of child tasks that fail together.
///
///  - `spawn` starts a child in the group.
///  - The first child to fail with an exception (other than cancelled_error)
///    cancels every other child and the task that created the group (unless it is
///    already in `join()`); `join()` rethrows that first exception once all
///    children have finished (`failure()` holds it). Later failures go to the
///    loop's exception handler.
///  - `join()` waits for every child, including ones spawned while joining.
///  - Cancelling the task in `join()` cancels all children, waits for them, and
///    throws cancelled_error.
///
/// Prefer `with_task_group`, which joins even when the body throws, so leaving the
/// scope always waits for all children. A task_group destroyed with children still
/// running (no join) cancels them and lets them finish on their own.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** `join()` is cancel-safe in the sense above: cancellation is
/// forwarded to the children and join still waits for all of them.
///
/// `spawn` returns a join_handle; a child whose result you do not need is
/// `detach()`ed (the group still waits for it and still sees its failure):
///
/// ```cpp
/// int n = co_await eddy::with_task_group([&](eddy::task_group& g) -> eddy::task<int> {
///   auto a = g.spawn(fetch(x));      // a join_handle: await it for the result
///   g.spawn(log_visit(x)).detach();  // no result wanted: the group still waits for it
///   co_return co_await a;
/// });
/// ```
class task_group {
 public:
  task_group();
  ~task_group();
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  /// Starts `t` as a child. Throws std::logic_error once the group has been
  /// joined to completion.
  template <class T>
  join_handle<T> spawn(task<T> t, std::source_location site = std::source_location::current()) {
    check_spawn();
    join_handle<T> h = l_->spawn(std::move(t), site);
    adopt(h.core());
    return h;
  }

  /// Cancels every running child.
  void cancel() noexcept;
  /// Children not yet finished.
  std::size_t size() const noexcept { return count_; }
  /// True if this group cancelled the task that created it (a child failed while
  /// that task was outside join()). A task that catches cancelled_error can tell
  /// with this whether the cancellation came from its own group (a child failed:
  /// join() will rethrow that failure) or from outside (Ctrl-C under eddy::run, a
  /// timeout, a cancel() of its join handle). For tasks that must not fail
  /// together, such as a server's connections, use eddy::join_set.
  bool cancelled_parent() const noexcept { return cancelled_parent_; }
  /// The first child failure (what join() rethrows), or nullptr if none so far.
  std::exception_ptr failure() const noexcept { return first_error_; }

  /// Waits for all children; rethrows the first failure.
  task<void> join();

 private:
  struct [[nodiscard]] join_awaiter : detail::waiter {
    task_group* g;
    explicit join_awaiter(task_group* gg) noexcept : g(gg) {
      hook.request = &on_join_cancel;
      hook.describe = [](const detail::cancel_hook*, detail::wait_description& d) noexcept {
        d.kind = "task_group join";
      };
    }
    bool await_ready() noexcept {
      if (take_precancel()) {  // a pending cancellation: forward it, still wait
        precancelled = false;
        g->join_cancelled_ = true;
        g->cancel();
      }
      return g->count_ == 0;
    }
    void await_suspend(std::coroutine_handle<> h) { suspend_on(g->joiners_, h); }
    void await_resume() { resume_check(); }
    static bool on_join_cancel(detail::cancel_hook* hk) noexcept;
  };

  friend struct detail::task_group_access;
  void check_spawn() const;
  void adopt(detail::task_core* c) noexcept;
  static void child_done(detail::task_core* c, void* self) noexcept;

  loop* l_;
  detail::task_core* parent_;
  detail::task_core* head_ = nullptr;
  std::size_t count_ = 0;
  std::exception_ptr first_error_;
  detail::wait_list joiners_;
  bool joining_ = false;
  bool joined_ = false;
  bool cancelled_parent_ = false;
  bool join_cancelled_ = false;
  bool report_later_failures_ = true;
};

namespace detail {
/// For when_all: its caller has handled the first failure; later ones are
/// consequences (siblings failing as they are cancelled), not news. asyncio's
/// gather marks them retrieved the same way.
struct task_group_access {
  static void quiet_later_failures(task_group& g) noexcept { g.report_later_failures_ = false; }
};

template <class F>
using group_body_result_t = typename std::invoke_result_t<F&, task_group&>::value_type;
}

/// Runs `body(group)` with a fresh task_group and always joins it: on success it
/// returns the body's value after every child finished (or rethrows the first
/// child failure); if the body throws, the children are cancelled and awaited, then
/// the body's exception is rethrown. `body` is kept alive in this coroutine's frame
/// for the whole scope, so a lambda's captures stay valid.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** cancelling the caller cancels the body and all children,
/// waits for all of them, then throws cancelled_error.
template <class F>
task<detail::group_body_result_t<F>> with_task_group(F body) {
  using R = detail::group_body_result_t<F>;
  task_group g;
  std::exception_ptr body_error;
  std::optional<std::conditional_t<std::is_void_v<R>, char, R>> result;
  try {
    if constexpr (std::is_void_v<R>) {
      co_await body(g);
      result.emplace();
    } else {
      result.emplace(co_await body(g));
    }
  } catch (const cancelled_error&) {
    // Our own doing when a child failed: join() reports that failure instead.
    if (!g.cancelled_parent()) body_error = std::current_exception();
  } catch (...) {
    body_error = std::current_exception();
  }
  if (body_error) {
    g.cancel();
    try {
      co_await g.join();
    } catch (...) {
    }
    std::rethrow_exception(body_error);
  }
  co_await g.join();
  if constexpr (!std::is_void_v<R>) co_return std::move(*result);
}

}  // namespace eddy
