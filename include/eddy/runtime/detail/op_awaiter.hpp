// The awaiter every I/O operation shares, from the fd awaitables of io/ down to
// the runtime's own eventfd read in eddy::run: it lives here, at the runtime's
// level, because the runtime may use the backend contract but not io/ above it
// (docs/layers.md). detail, not API.
#pragma once

#include <cerrno>
#include <coroutine>

#include <eddy/io/detail/io_op.hpp>
#include <eddy/runtime/detail/await_traits.hpp>
#include <eddy/runtime/detail/task_core.hpp>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/loop.hpp>

namespace eddy::detail {

/// Submits `op` to the loop's backend (true: it completed inline).
bool submit_op(loop& l, io_op& op);
void cancel_op(loop& l, io_op& op) noexcept;
/// The awaiter every fd operation shares: a cancellation point; submits the op;
/// resumes only after the backend is done with it (DESIGN.md §4).
struct [[nodiscard]] op_awaiter {
  io_op op{};
  loop* l;
  task_core* core = nullptr;
  std::coroutine_handle<> h{};
  cancel_hook hook{&on_cancel, &describe};
  bool precancelled = false;
  const char* what;

  op_awaiter(loop& lp, const char* w, op_code c, int fd, void* buf = nullptr, unsigned len = 0,
             unsigned flags = 0) noexcept
      : l(&lp), what(w) {
    op.code = c;
    op.fd = fd;
    op.buf = buf;
    op.len = len;
    op.flags = flags;
  }
  op_awaiter(const op_awaiter&) = delete;
  // Movable only before it is awaited (with_timeout moves it into a child task):
  // the op's parameters travel; it is not submitted yet, so no backend holds it.
  op_awaiter(op_awaiter&& o) noexcept : op(o.op), l(o.l), what(o.what) {}

  bool await_ready() noexcept {
    // A close is not a cancellation point (eddy::close): a cancelled task closing
    // its fd in clean-up must close it, not throw first and leak it. The pending
    // cancel waits for the next point.
    if (op.code == op_code::close) return false;
    precancelled = consume_pending_cancel();
    return precancelled;
  }
  bool await_suspend(std::coroutine_handle<> hh) {
    h = hh;
    core = current_core();
    op.complete = &on_complete;
    if (submit_op(*l, op)) {
      // Done inline: go on, unless the task has spent its budget (it starts at
      // 0 outside a loop resumption, and then wraps: no limit).
      if (--tls_coop_left != 0) return false;
      loop_access::coop_yield(*l, core, h);
      return true;
    }
    if (core != nullptr && op.code != op_code::close) core->hook_ = &hook;
    return true;
  }
  /// The raw result (bytes, fd, revents or -errno); throws cancelled_error when the
  /// op was cancelled before it did anything.
  int raw_result() {
    if (precancelled) throw cancelled_error{};
    if (core != nullptr && core->hook_ == &hook) core->hook_ = nullptr;
    // -ECANCELED only ever comes from a cancellation: ours, or a close of the fd
    // (which cancels everything in flight on it without marking each op).
    if (op.res == -ECANCELED) throw cancelled_error{};
    if (op.cancel_requested) {
      if (op.res == -EINTR) throw cancelled_error{};
      if (core != nullptr) core->cancel_pending_ = true;  // completed anyway: deliver later
    }
    return op.res;
  }
  static void on_complete(io_op* o) noexcept {
    op_awaiter* a = outer_of(o, &op_awaiter::op);
    loop_schedule(*a->l, a->core, a->h);
  }
  static void describe(const cancel_hook* hk, wait_description& d) noexcept {
    const op_awaiter* a = outer_of(const_cast<cancel_hook*>(hk), &op_awaiter::hook);
    d.kind = loop_metrics::op_kind_name(static_cast<std::size_t>(a->op.code));
    d.fd = a->op.fd;
  }
  static bool on_cancel(cancel_hook* hk) noexcept {
    op_awaiter* a = outer_of(hk, &op_awaiter::hook);
    if (a->op.state != op_state::in_flight) return false;
    cancel_op(*a->l, a->op);
    return true;
  }
};

/// An op_awaiter whose result is the raw int (bytes, fd, revents or -errno).
struct [[nodiscard]] raw_op_awaiter : op_awaiter {
  using op_awaiter::op_awaiter;
  int await_resume() { return raw_result(); }
};

}  // namespace eddy::detail
