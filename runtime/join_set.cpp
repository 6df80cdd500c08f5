// join_set bookkeeping (include/eddy/runtime/join_set.hpp). Running tasks are
// linked through their cores' group links, like a task_group's children, and each
// holds one extra reference owned by the set. When a task finishes, its on_done
// observer (child_done) unlinks it and either hands its outcome to the handler
// (deliver_) and drops the reference, or queues the core for next(); then it wakes
// the next() waiters, and the joiners once nothing runs. Unlike task_group, a
// failure cancels nothing.
#include <eddy/runtime/join_set.hpp>

namespace eddy::detail {

join_set_base::join_set_base(deliver_fn deliver) : l_(&loop::current()), deliver_(deliver) {}

join_set_base::~join_set_base() {
  // Running tasks: unhook, cancel, let them finish on their own (their exceptions,
  // if any, reach the loop's handler as a detached task's would).
  for (task_core* c = head_; c != nullptr;) {
    task_core* next = c->group_next_;
    c->on_done_ = nullptr;
    c->on_done_arg_ = nullptr;
    c->group_prev_ = c->group_next_ = nullptr;
    c->request_cancel();
    release_handle(c);
    c = next;
  }
  for (task_core* c : done_) release_handle(c);
}

void join_set_base::adopt(task_core* c) noexcept {
  c->on_done_ = &child_done;
  c->on_done_arg_ = this;
  c->link_sibling(head_);
  ++running_;
  if (join_cancelled_) c->request_cancel();
}

void join_set_base::cancel() noexcept {
  for (task_core* c = head_; c != nullptr; c = c->group_next_) c->request_cancel();
}

task_core* join_set_base::pop_done() noexcept {
  if (done_.empty()) return nullptr;
  task_core* c = done_.front();
  done_.pop_front();
  return c;
}

void join_set_base::child_done(task_core* c, void* self) noexcept {
  auto* s = static_cast<join_set_base*>(self);
  c->unlink_sibling(s->head_);
  c->on_done_ = nullptr;
  --s->running_;
  if (s->deliver_ != nullptr) {
    s->deliver_(s, c);
  } else {
    try {
      s->done_.push_back(c);
    } catch (...) {  // out of memory: the outcome cannot be kept; a failure still
      release_handle(c);  // reaches the loop's exception handler
    }
  }
  s->finish_waiters_.grant_all();
  if (s->running_ == 0) s->joiners_.grant_all();
}

bool join_set_base::join_awaiter::on_join_cancel(cancel_hook* hk) noexcept {
  auto* self = static_cast<join_awaiter*>(outer_of(hk, &waiter::hook));
  self->s->join_cancelled_ = true;
  self->s->cancel();
  return true;  // keep waiting for the tasks, then throw cancelled_error
}

task<void> join_set_base::join() {
  while (running_ != 0) co_await join_awaiter(this);
  if (join_cancelled_) {
    join_cancelled_ = false;  // delivered once
    throw cancelled_error{};
  }
}

task<void> join_set_base::shutdown() {
  cancel();
  co_await join();
}

}  // namespace eddy::detail
