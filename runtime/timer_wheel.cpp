// Advancing the timer wheel; the layout and invariants are in
// include/eddy/runtime/detail/timer_wheel.hpp.
#include <bit>
#include <cstddef>
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

namespace {

// Stable merge sort of a singly linked list (through `next`) by deadline: no
// allocation, O(n log n) for a burst of a million timers falling due together.
timer_node* sort_by_deadline(timer_node* head, std::size_t n) noexcept {
  if (n <= 1) return head;
  timer_node* mid = head;
  for (std::size_t i = 1; i < n / 2; ++i) mid = mid->next;
  timer_node* right = mid->next;
  mid->next = nullptr;
  timer_node* a = sort_by_deadline(head, n / 2);
  timer_node* b = sort_by_deadline(right, n - n / 2);
  timer_node* out = nullptr;
  timer_node** tail = &out;
  while (a != nullptr && b != nullptr) {
    timer_node*& pick = b->deadline_ns < a->deadline_ns ? b : a;  // ties: a, the earlier armed
    *tail = pick;
    tail = &pick->next;
    pick = pick->next;
  }
  *tail = a != nullptr ? a : b;
  return out;
}

}  // namespace

// Everything due in one advance fires in deadline order, ties in the order they
// were armed (asyncio's heap gives the same): a slot or the due list keeps arming
// order only, and several deadlines share a 1 ms tick or lie in the past.
std::size_t timer_wheel::advance(std::int64_t now_ns) noexcept {
  const std::uint64_t now = tick_floor(now_ns);
  std::size_t fired = 0;
  for (;;) {
    timer_node* due = nullptr;
    timer_node** tail = &due;
    std::size_t count = 0;
    // Taken entries are unarmed (level -1): a cancel before they fire finds them
    // fired, as it would have had they fired at once.
    auto take = [&](timer_node* n) noexcept {
      n->next = n->prev = nullptr;
      n->level = -1;
      --size_;
      *tail = n;
      tail = &n->next;
      ++count;
    };
    while (timer_node* n = head_[levels][0]) {
      unlink(*n);
      take(n);
    }
    for (;;) {
      expiration e;
      if (!next_expiration(e) || e.tick > now) break;
      if (e.tick > elapsed_) elapsed_ = e.tick;
      timer_node* n = head_[e.level][e.slot];
      head_[e.level][e.slot] = nullptr;
      tail_[e.level][e.slot] = nullptr;
      occupied_[e.level] &= ~(std::uint64_t{1} << e.slot);
      while (n != nullptr) {
        timer_node* next = n->next;
        if (n->tick <= elapsed_) {
          take(n);
        } else {
          n->next = n->prev = nullptr;
          n->level = -1;
          file(*n);  // cascade one or more levels down
        }
        n = next;
      }
    }
    if (now > elapsed_) elapsed_ = now;
    if (due == nullptr) break;
    due = sort_by_deadline(due, count);
    while (due != nullptr) {
      timer_node* next = due->next;
      due->next = nullptr;
      due->fire(due);
      ++fired;
      due = next;
    }
    // A fire may arm an entry that is already due (a deadline in the past).
    if (head_[levels][0] == nullptr) break;
  }
  return fired;
}

}  // namespace eddy::detail
