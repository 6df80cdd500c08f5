// A hierarchical timing wheel: 6 levels of 64 slots, 1 ms per level-0 slot, about
// 2.2 years of range (longer deadlines are parked in the top level and re-filed).
//
// Arm and cancel are O(1): an intrusive doubly linked list per slot and a 64-bit
// occupancy mask per level. Advancing finds the next occupied slot with a bit scan,
// takes its list, fires level-0 entries and re-files higher-level entries one level
// down (the cascade), as tokio's driver does.
//
// Invariants:
//  - An entry at level L lies in a slot strictly after the current slot of level L,
//    so the first level with any occupied slot holds the earliest deadline.
//  - An entry's tick is ceil(deadline / 1 ms), and it fires only once the wheel has
//    advanced to that tick, which `advance` does only up to floor(now / 1 ms):
//    a timer never fires early; it may fire up to one tick late.
#pragma once

#include <bit>
#include <cstdint>

namespace eddy::detail {

struct timer_node {
  timer_node* next = nullptr;
  timer_node* prev = nullptr;
  std::int64_t deadline_ns = 0;  // exact deadline, loop clock
  std::uint64_t tick = 0;        // ceil(deadline / tick length)
  void (*fire)(timer_node*) noexcept = nullptr;
  std::int16_t level = -1;  // -1: not armed; 6: the due list
  std::uint8_t slot = 0;
};

class timer_wheel {
 public:
  static constexpr int levels = 6;
  static constexpr int slot_bits = 6;
  static constexpr int slots = 1 << slot_bits;
  static constexpr std::int64_t tick_ns = 1'000'000;
  // Farthest an entry is filed ahead: 63 top-level slots (~2.1 years). Later
  // deadlines are filed there and re-filed when that slot comes up. Not 64: the
  // clamped entry must never land in the top level's current slot.
  static constexpr std::uint64_t max_ahead = std::uint64_t{slots - 1} << ((levels - 1) * slot_bits);

  static std::uint64_t tick_ceil(std::int64_t ns) noexcept {
    return ns <= 0 ? 0 : static_cast<std::uint64_t>((ns + tick_ns - 1) / tick_ns);
  }
  static std::uint64_t tick_floor(std::int64_t ns) noexcept {
    return ns <= 0 ? 0 : static_cast<std::uint64_t>(ns / tick_ns);
  }

  void arm(timer_node& n, std::int64_t deadline_ns) noexcept {
    n.deadline_ns = deadline_ns;
    n.tick = tick_ceil(deadline_ns);
    file(n);
    ++size_;
  }

  void cancel(timer_node& n) noexcept {
    if (n.level < 0) return;
    unlink(n);
    --size_;
  }

  static bool armed(const timer_node& n) noexcept { return n.level >= 0; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// The tick at which the next entry may fire, or UINT64_MAX if none.
  std::uint64_t next_tick() const noexcept;

  /// Advances to floor(now / tick) and fires every due entry (calls `fire`).
  /// Returns the number fired.
  std::size_t advance(std::int64_t now_ns) noexcept;

  /// Unlinks every entry without firing it; calls `drop` on each.
  template <class Drop>
  void clear(Drop drop) noexcept {
    for (int l = 0; l <= levels; ++l) {
      for (int s = 0; s < (l == levels ? 1 : slots); ++s) {
        while (timer_node* n = head_[l][s]) {
          unlink(*n);
          --size_;
          drop(n);
        }
      }
    }
  }

 private:
  void file(timer_node& n) noexcept {
    if (n.tick <= elapsed_) {
      push(n, levels, 0);
      return;
    }
    std::uint64_t when = n.tick;
    if (when - elapsed_ > max_ahead) when = elapsed_ + max_ahead;
    const std::uint64_t diff = (elapsed_ ^ when) | (slots - 1);
    const int significant = 63 - std::countl_zero(diff);
    int level = significant / slot_bits;
    if (level >= levels) level = levels - 1;
    const auto slot = static_cast<std::uint8_t>((when >> (level * slot_bits)) & (slots - 1));
    push(n, level, slot);
  }

  void push(timer_node& n, int level, std::uint8_t slot) noexcept {
    n.level = static_cast<std::int16_t>(level);
    n.slot = slot;
    n.next = nullptr;
    n.prev = tail_[level][slot];
    if (n.prev != nullptr) {
      n.prev->next = &n;
    } else {
      head_[level][slot] = &n;
      if (level < levels) occupied_[level] |= std::uint64_t{1} << slot;
    }
    tail_[level][slot] = &n;
  }

  void unlink(timer_node& n) noexcept {
    const int l = n.level;
    const int s = n.slot;
    if (n.prev != nullptr) n.prev->next = n.next;
    else head_[l][s] = n.next;
    if (n.next != nullptr) n.next->prev = n.prev;
    else tail_[l][s] = n.prev;
    if (head_[l][s] == nullptr && l < levels) occupied_[l] &= ~(std::uint64_t{1} << s);
    n.level = -1;
    n.next = n.prev = nullptr;
  }

  struct expiration {
    int level;
    int slot;
    std::uint64_t tick;
  };
  bool next_expiration(expiration& out) const noexcept;

  // Index `levels` is the due list: entries already at or before `elapsed_`.
  timer_node* head_[levels + 1][slots] = {};
  timer_node* tail_[levels + 1][slots] = {};
  std::uint64_t occupied_[levels] = {};
  std::uint64_t elapsed_ = 0;
  std::size_t size_ = 0;
};

}  // namespace eddy::detail
