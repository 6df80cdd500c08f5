// task_group bookkeeping: children are linked through their cores (group links),
// the on_done observer of each child records the first failure, cancels the rest
// and wakes the joiner when the last child finishes.
#include <stdexcept>

#include <eddy/runtime/task_group.hpp>

namespace eddy {

namespace {

bool failed(const detail::task_core* c) noexcept {
  if (!c->promise_->error_) return false;
  try {
    std::rethrow_exception(c->promise_->error_);
  } catch (const cancelled_error&) {
    return false;
  } catch (...) {
    return true;
  }
}

}  // namespace

task_group::task_group() : l_(&loop::current()), parent_(detail::current_core()) {}

task_group::~task_group() {
  // No join: cancel and let the children finish on their own; unhook them so
  // they do not touch this object again.
  for (detail::task_core* c = head_; c != nullptr;) {
    detail::task_core* next = c->group_next_;
    c->on_done_ = nullptr;
    c->on_done_arg_ = nullptr;
    c->group_prev_ = c->group_next_ = nullptr;
    c->request_cancel();
    c = next;
  }
}

void task_group::check_spawn() const {
  if (joined_) throw std::logic_error("eddy::task_group::spawn: the group has already been joined");
}

void task_group::adopt(detail::task_core* c) noexcept {
  c->on_done_ = &child_done;
  c->on_done_arg_ = this;
  c->link_sibling(head_);
  ++count_;
  if (join_cancelled_ || first_error_) c->request_cancel();
}

void task_group::cancel() noexcept {
  for (detail::task_core* c = head_; c != nullptr; c = c->group_next_) c->request_cancel();
}

void task_group::child_done(detail::task_core* c, void* self) noexcept {
  auto* g = static_cast<task_group*>(self);
  c->unlink_sibling(g->head_);
  --g->count_;
  if (failed(c)) {
    c->result_taken_ = true;  // the group owns this failure now
    if (!g->first_error_) {
      g->first_error_ = c->promise_->error_;
      g->cancel();
      if (!g->joining_ && g->parent_ != nullptr && !g->parent_->done_) {
        g->cancelled_parent_ = true;
        g->parent_->request_cancel();
      }
    } else if (g->report_later_failures_) {
      g->l_->report_exception(c->promise_->error_);
    }
  }
  if (g->count_ == 0) g->joiners_.grant_all();
}

bool task_group::join_awaiter::on_join_cancel(detail::cancel_hook* hk) noexcept {
  auto* self = static_cast<join_awaiter*>(detail::outer_of(hk, &detail::waiter::hook));
  self->g->join_cancelled_ = true;
  self->g->cancel();
  return true;  // we keep waiting for the children, then throw cancelled_error
}

task<void> task_group::join() {
  joining_ = true;
  struct reset {
    task_group* g;
    ~reset() { g->joining_ = false; }
  } r{this};
  while (count_ != 0) co_await join_awaiter(this);
  joined_ = true;
  if (join_cancelled_) {
    join_cancelled_ = false;  // delivered once; a later join() only waits
    throw cancelled_error{};
  }
  if (first_error_) std::rethrow_exception(first_error_);
}

}  // namespace eddy
