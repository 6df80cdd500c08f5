// The part of a loop other threads touch (include/eddy/runtime/detail/
// remote_queue.hpp has the wakeup protocol).
#include <thread>

#include <eddy/runtime/detail/remote_queue.hpp>
#include <eddy/runtime/loop.hpp>

#include "io/backend.hpp"

namespace eddy::detail {

loop_shared::~loop_shared() {
  remote_node* n = take_all();
  while (n != nullptr) {
    remote_node* next = n->next;
    n->fn(n, false);
    n = next;
  }
}

bool loop_shared::post(remote_node* n) noexcept {
  posters.fetch_add(1, std::memory_order_seq_cst);
  if (closed.load(std::memory_order_seq_cst)) {
    posters.fetch_sub(1, std::memory_order_release);
    n->fn(n, false);
    return false;
  }
  remote_node* old = head.load(std::memory_order_relaxed);
  do {
    n->next = old;
  } while (!head.compare_exchange_weak(old, n, std::memory_order_seq_cst,
                                       std::memory_order_relaxed));
  if (sleeping.load(std::memory_order_seq_cst)) wake();
  posters.fetch_sub(1, std::memory_order_release);
  return true;
}

void loop_shared::wake() noexcept {
  if (be->wake()) wakeups.fetch_add(1, std::memory_order_relaxed);
}

remote_node* loop_shared::take_all() noexcept {
  remote_node* n = head.exchange(nullptr, std::memory_order_acquire);
  remote_node* rev = nullptr;
  while (n != nullptr) {
    remote_node* next = n->next;
    n->next = rev;
    rev = n;
    n = next;
  }
  return rev;
}

}  // namespace eddy::detail

namespace eddy {

bool loop_handle::stop() const noexcept {
  if (!s_) return false;
  s_->posters.fetch_add(1, std::memory_order_seq_cst);
  if (s_->closed.load(std::memory_order_seq_cst)) {
    s_->posters.fetch_sub(1, std::memory_order_release);
    return false;
  }
  s_->stop_requested.store(true, std::memory_order_seq_cst);
  if (s_->sleeping.load(std::memory_order_seq_cst)) s_->wake();
  s_->posters.fetch_sub(1, std::memory_order_release);
  return true;
}

}  // namespace eddy
