// The loop's FIFO of things to run: a growable ring of {function, two words}.
// A coroutine resumption is {resume, handle, task core}; a callback is
// {invoke, node}. `run == false` asks the entry to release itself without running
// (used when a closed loop discards what is left).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace eddy::detail {

struct ready_entry {
  void (*fn)(void* a, void* b, bool run);
  void* a;
  void* b;
};

class ready_queue {
 public:
  ready_queue() = default;
  ready_queue(const ready_queue&) = delete;
  ready_queue& operator=(const ready_queue&) = delete;
  ~ready_queue() { std::free(buf_); }

  void push(void (*fn)(void*, void*, bool), void* a, void* b) {
    if (tail_ - head_ == cap_) grow();
    buf_[tail_ & (cap_ - 1)] = ready_entry{fn, a, b};
    ++tail_;
  }
  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }
  ready_entry pop() noexcept { return buf_[head_++ & (cap_ - 1)]; }

 private:
  void grow() {
    const std::size_t ncap = cap_ == 0 ? 256 : cap_ * 2;
    auto* nbuf = static_cast<ready_entry*>(std::malloc(ncap * sizeof(ready_entry)));
    if (nbuf == nullptr) throw std::bad_alloc();
    const std::size_t n = tail_ - head_;
    for (std::size_t i = 0; i < n; ++i) nbuf[i] = buf_[(head_ + i) & (cap_ - 1)];
    std::free(buf_);
    buf_ = nbuf;
    cap_ = ncap;
    head_ = 0;
    tail_ = n;
  }

  ready_entry* buf_ = nullptr;
  std::size_t cap_ = 0;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace eddy::detail
