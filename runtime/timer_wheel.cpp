// Advancing the timer wheel; the layout and invariants are in
// include/eddy/runtime/detail/timer_wheel.hpp.
#include <bit>
#include <cstdint>

#include <eddy/runtime/detail/timer_wheel.hpp>

namespace eddy::detail {

bool timer_wheel::next_expiration(expiration& out) const noexcept {
  for (int level = 0; level < levels; ++level) {
    const std::uint64_t occ = occupied_[level];
    if (occ == 0) continue;
    const int shift = level * slot_bits;
    const std::uint64_t slot_range = std::uint64_t{1} << shift;
    const std::uint64_t level_range = slot_range << slot_bits;
    const int now_slot = static_cast<int>((elapsed_ >> shift) & (slots - 1));
    const int zeros = std::countr_zero(std::rotr(occ, now_slot));
    const int slot = (zeros + now_slot) & (slots - 1);
    std::uint64_t tick = (elapsed_ & ~(level_range - 1)) + static_cast<std::uint64_t>(slot) * slot_range;
    // Only a clamped top-level entry can sit in a slot behind the current one:
    // it belongs to the next turn of that level.
    if (slot < now_slot) tick += level_range;
    out = expiration{level, slot, tick};
    return true;
  }
  return false;
}

std::uint64_t timer_wheel::next_tick() const noexcept {
  if (head_[levels][0] != nullptr) return elapsed_;
  expiration e;
  if (!next_expiration(e)) return UINT64_MAX;
  return e.tick;
}

std::size_t timer_wheel::advance(std::int64_t now_ns) noexcept {
  const std::uint64_t now = tick_floor(now_ns);
  std::size_t fired = 0;
  for (;;) {
    while (timer_node* n = head_[levels][0]) {
      unlink(*n);
      --size_;
      n->fire(n);
      ++fired;
    }
    expiration e;
    if (!next_expiration(e) || e.tick > now) break;
    if (e.tick > elapsed_) elapsed_ = e.tick;
    timer_node* n = head_[e.level][e.slot];
    head_[e.level][e.slot] = nullptr;
    tail_[e.level][e.slot] = nullptr;
    occupied_[e.level] &= ~(std::uint64_t{1} << e.slot);
    while (n != nullptr) {
      timer_node* next = n->next;
      n->next = n->prev = nullptr;
      n->level = -1;
      if (n->tick <= elapsed_) {
        --size_;
        n->fire(n);
        ++fired;
      } else {
        file(*n);  // cascade one or more levels down
      }
      n = next;
    }
  }
  if (now > elapsed_) elapsed_ = now;
  return fired;
}

}  // namespace eddy::detail
