// A Chase-Lev work-stealing deque of pointers, with the memory orders of
// Lê, Pop, Cohen, Zappa Nardelli, "Correct and Efficient Work-Stealing for Weak Memory
// Models" (PPoPP 2013), figure 1.
//
// Protocol:
//   - one owner thread calls push() and pop() at the bottom (LIFO: the newest job is the
//     hottest in cache, and fork-join pops the child it just pushed);
//   - any thread calls steal() at the top (FIFO: thieves take the oldest, largest piece
//     of a fork-join tree);
//   - `top_` only grows, by CAS; `bottom_` is written by the owner only.
//   - The element array grows by doubling when full. Thieves may still be reading the old
//     array, so it is retired (kept until the deque dies) rather than freed. A deque
//     lives as long as its pool, and the arrays total at most twice the largest one, so
//     this costs little and needs no hazard pointers or epochs.
//
// Deviations from the paper, both stronger, never weaker:
//   - push() publishes `bottom_` with a release store instead of a release fence followed
//     by a relaxed store. It orders the same writes for thieves (the element and the job
//     it points to), and ThreadSanitizer understands release stores but not fences, so
//     the sanitizer build sees the edge from the pusher to the thief.
//   - steal() reads the array with acquire instead of consume (compilers promote consume
//     to acquire anyway).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "sched/fence.hpp"

namespace eddy::sched_detail {

template <class T>
class chase_lev_deque {
 public:
  static constexpr std::size_t initial_capacity = 256;

  chase_lev_deque() : array_(new ring(initial_capacity)) { retired_.emplace_back(array_.load()); }
  chase_lev_deque(const chase_lev_deque&) = delete;
  chase_lev_deque& operator=(const chase_lev_deque&) = delete;

  /// Owner only.
  void push(T* item) {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    // Acquire pairs with the thieves' CAS on top_: a slot is reused only after the thief
    // that emptied it has finished reading it.
    const std::int64_t t = top_.load(std::memory_order_acquire);
    ring* a = array_.load(std::memory_order_relaxed);
    if (b - t > static_cast<std::int64_t>(a->capacity) - 1) a = grow(a, t, b);
    a->at(b).store(item, std::memory_order_relaxed);
    // Release: a thief that reads the new bottom (acquire) also sees the element and
    // everything the owner wrote into *item before pushing it.
    bottom_.store(b + 1, std::memory_order_release);
  }

  /// Owner only. Returns nullptr when empty.
  T* pop() {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    ring* a = array_.load(std::memory_order_relaxed);
    bottom_.store(b, std::memory_order_relaxed);
    // Full fence: the claim on slot b (the store above) must be visible before we read
    // top_, and a thief's read of bottom_ must not pass its own read of top_ (the fence
    // in steal). Without it, owner and thief could both take the last element.
    seq_cst_fence();
    std::int64_t t = top_.load(std::memory_order_relaxed);
    if (t > b) {  // Empty: undo the claim.
      bottom_.store(b + 1, std::memory_order_relaxed);
      return nullptr;
    }
    T* item = a->at(b).load(std::memory_order_relaxed);
    if (t == b) {
      // The last element: race the thieves for it through top_, as they do.
      if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                        std::memory_order_relaxed))
        item = nullptr;
      bottom_.store(b + 1, std::memory_order_relaxed);
    }
    return item;
  }

  enum class steal_result { success, empty, lost_race };

  /// Any thread. On success stores the stolen item in `out`.
  steal_result steal(T*& out) {
    std::int64_t t = top_.load(std::memory_order_acquire);
    // Full fence: read top_ before bottom_, against the owner's fence in pop().
    seq_cst_fence();
    const std::int64_t b = bottom_.load(std::memory_order_acquire);
    if (t >= b) return steal_result::empty;
    ring* a = array_.load(std::memory_order_acquire);
    T* item = a->at(t).load(std::memory_order_relaxed);
    // seq_cst CAS: the single point that decides who owns element t; only the winner may
    // use the value it read.
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed))
      return steal_result::lost_race;
    out = item;
    return steal_result::success;
  }

  /// Any thread; a hint only (exact when no one is pushing or taking).
  std::size_t size_hint() const {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    const std::int64_t t = top_.load(std::memory_order_relaxed);
    return b > t ? static_cast<std::size_t>(b - t) : 0;
  }

  bool empty_hint() const { return size_hint() == 0; }

 private:
  struct ring {
    explicit ring(std::size_t cap)
        : capacity(cap), mask(cap - 1), slots(new std::atomic<T*>[cap]) {}
    std::atomic<T*>& at(std::int64_t i) { return slots[static_cast<std::size_t>(i) & mask]; }
    std::size_t capacity;
    std::size_t mask;
    std::unique_ptr<std::atomic<T*>[]> slots;
  };

  ring* grow(ring* old, std::int64_t t, std::int64_t b) {
    auto bigger = std::make_unique<ring>(old->capacity * 2);
    for (std::int64_t i = t; i < b; ++i)
      bigger->at(i).store(old->at(i).load(std::memory_order_relaxed), std::memory_order_relaxed);
    ring* fresh = bigger.get();
    retired_.push_back(std::move(bigger));
    // Release: a thief that loads the new array (acquire) sees the copied slots.
    array_.store(fresh, std::memory_order_release);
    return fresh;
  }

  // top_ and bottom_ on their own cache lines: thieves hammer top_, the owner bottom_.
  alignas(64) std::atomic<std::int64_t> top_{0};
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  alignas(64) std::atomic<ring*> array_;
  std::vector<std::unique_ptr<ring>> retired_;  // owner only; every array ever used
};

}  // namespace eddy::sched_detail
