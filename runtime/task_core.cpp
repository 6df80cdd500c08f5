// Life cycle of a spawned task (include/eddy/runtime/detail/task_core.hpp):
//  - spawn: core with refs = 2 (join handle + running task), linked into the
//    loop's live list, first resumption queued;
//  - final suspend: done, unlinked, on_done observer told, waiter resumed by
//    symmetric transfer, running ref dropped;
//  - last ref dropped: an exception nobody retrieved (and that is not a
//    cancellation) goes to the loop's exception handler; frame and core freed
//    (the core is a pool block of its own, made by loop::start).
#include <exception>
#include <stdexcept>

#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/loop.hpp>

namespace eddy::detail {

constinit thread_local task_core* tls_current_core = nullptr;
constinit thread_local unsigned tls_coop_left = 0;
constinit thread_local task_core* tls_timed_core = nullptr;

void throw_empty_task() {
  throw std::logic_error("eddy::task: empty task (default-constructed or moved-from)");
}

namespace {

void finalize(task_core* c) noexcept {
  if (c->promise_->error_ && !c->result_taken_ && !is_cancellation(c->promise_->error_)) {
    c->loop_->report_exception(c->promise_->error_);
  }
  std::coroutine_handle<>::from_address(c->frame_).destroy();
  pool_delete(c);
}

}  // namespace

std::coroutine_handle<> on_root_done(task_core* c) noexcept {
  c->done_ = true;
  c->hook_ = nullptr;
  if (tls_timed_core == c) tls_timed_core = nullptr;
  detail::loop_unlink_live(*c->loop_, c);
  if (c->on_done_ != nullptr) c->on_done_(c, c->on_done_arg_);
  std::coroutine_handle<> next = std::noop_coroutine();
  if (c->waiter_) {
    next = std::exchange(c->waiter_, {});
    tls_current_core = c->waiter_core_;
  } else {
    tls_current_core = nullptr;
  }
  if (--c->refs_ == 0) finalize(c);
  return next;
}

void release_handle(task_core* c) noexcept {
  if (--c->refs_ == 0) finalize(c);
}

}  // namespace eddy::detail
