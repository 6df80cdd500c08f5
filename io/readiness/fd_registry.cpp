// See fd_registry.hpp. The table is two levels of atomic pointers, chunks made on
// first use and never freed, so a lookup is two loads and no lock; numbers past
// the table (2^28) are not tracked and close where they are closed.
#include "io/readiness/fd_registry.hpp"

#include <atomic>
#include <cstddef>
#include <new>

#include "io/backend.hpp"
#include "io/readiness/readiness_engine.hpp"

namespace eddy::detail {
namespace {

constexpr std::size_t chunk_bits = 12;
constexpr std::size_t chunk_size = std::size_t{1} << chunk_bits;
constexpr std::size_t chunks = std::size_t{1} << 16;

struct chunk {
  std::atomic<readiness_engine*> owner[chunk_size];
};

std::atomic<chunk*> table[chunks];

std::atomic<readiness_engine*>* slot(int fd, bool make) noexcept {
  if (fd < 0) return nullptr;
  const auto i = static_cast<std::size_t>(fd);
  if ((i >> chunk_bits) >= chunks) return nullptr;
  std::atomic<chunk*>& top = table[i >> chunk_bits];
  chunk* c = top.load(std::memory_order_acquire);
  if (c == nullptr) {
    if (!make) return nullptr;
    auto* fresh = new (std::nothrow) chunk{};
    if (fresh == nullptr) return nullptr;
    if (top.compare_exchange_strong(c, fresh, std::memory_order_acq_rel))
      c = fresh;
    else
      delete fresh;  // another thread made it first; c holds theirs
  }
  return &c->owner[i & (chunk_size - 1)];
}

}  // namespace

std::mutex& registry_lock() noexcept {
  static std::mutex m;
  return m;
}

void registry_claim(int fd, readiness_engine* e) noexcept {
  if (auto* s = slot(fd, true)) s->store(e, std::memory_order_release);
}

void registry_release(int fd, readiness_engine* e) noexcept {
  if (auto* s = slot(fd, false)) {
    readiness_engine* expect = e;
    s->compare_exchange_strong(expect, nullptr, std::memory_order_acq_rel);
  }
}

readiness_engine* registry_owner(int fd) noexcept {
  auto* s = slot(fd, false);
  return s != nullptr ? s->load(std::memory_order_acquire) : nullptr;
}

bool registry_owned_by(int fd, const readiness_engine* e) noexcept {
  auto* s = slot(fd, false);
  return s == nullptr || s->load(std::memory_order_acquire) == e;
}

bool registry_hand_off(int fd, readiness_engine* self) noexcept {
  auto* s = slot(fd, false);
  if (s == nullptr) return false;
  readiness_engine* owner = s->load(std::memory_order_acquire);
  if (owner == nullptr || owner == self) return false;
  std::lock_guard<std::mutex> g(registry_lock());
  owner = s->load(std::memory_order_acquire);  // a retiring engine clears it under the lock
  if (owner == nullptr || owner == self) return false;
  // The owner can no longer find fd through the registry: a second hand-off of the
  // same number (a double close) closes locally, as ::close would.
  s->store(nullptr, std::memory_order_release);
  return owner->queue_remote_close(fd);
}

bool hand_off_close(int fd) noexcept { return registry_hand_off(fd, nullptr); }

}  // namespace eddy::detail
