// The receive block pool (declared in io/backend.hpp, beside buffer_ring).
#include "io/backend.hpp"

#include <new>

namespace eddy::detail {

block_pool::~block_pool() {
  for (const slot& s : slots_) delete[] s.p;
}

unsigned block_pool::class_of(std::size_t want) noexcept {
  unsigned c = 0;
  while (c + 1 < classes && class_size(c) < want) ++c;
  return c;
}

int block_pool::take(std::size_t want) noexcept {
  const unsigned c = class_of(want);
  const std::size_t size = class_size(c);
  if (!free_[c].empty()) {
    const unsigned id = free_[c].back();
    free_[c].pop_back();
    free_bytes_[c] -= size;
    out_bytes_ += size;
    return static_cast<int>(id);
  }
  if (out_bytes_ + size > max_bytes_) return -1;
  // Ids are 16-bit in an io_op; 64 MiB of 16 KiB blocks is 4096 of them.
  if (unused_ids_.empty() && slots_.size() >= 65535) return -1;
  try {
    // Room for every id to come back without recycle() allocating.
    free_[c].reserve(count_[c] + 1);
    std::byte* p = new std::byte[size];
    unsigned id;
    if (!unused_ids_.empty()) {
      id = unused_ids_.back();
      unused_ids_.pop_back();
    } else {
      slots_.reserve(slots_.size() + 1);
      unused_ids_.reserve(slots_.size() + 1);
      id = static_cast<unsigned>(slots_.size());
      slots_.push_back({});
    }
    slots_[id] = {p, static_cast<std::uint8_t>(c)};
    ++count_[c];
    out_bytes_ += size;
    return static_cast<int>(id);
  } catch (const std::bad_alloc&) {
    return -1;
  }
}

void block_pool::recycle(unsigned id) noexcept {
  slot& s = slots_[id];
  const std::size_t size = class_size(s.cls);
  out_bytes_ -= size;
  if (free_bytes_[s.cls] + size <= keep_bytes_) {
    free_[s.cls].push_back(id);
    free_bytes_[s.cls] += size;
    return;
  }
  delete[] s.p;
  s.p = nullptr;
  --count_[s.cls];
  unused_ids_.push_back(id);  // capacity reserved in take()
}

// An idle loop after a burst (loop::release_idle_memory): keep `keep` blocks
// worth of bytes free per class, give the coldest of the rest back to the heap.
// recycle() already caps what a class keeps; this lowers the cap while idle.
void block_pool::trim(std::size_t keep) noexcept {
  const std::size_t keep_bytes = keep * min_block;
  for (unsigned c = 0; c < classes; ++c) {
    std::vector<unsigned>& f = free_[c];
    std::size_t n = 0;  // take() reuses from the back: the front is coldest
    while (n < f.size() && free_bytes_[c] > keep_bytes) {
      slot& s = slots_[f[n]];
      delete[] s.p;
      s.p = nullptr;
      --count_[c];
      free_bytes_[c] -= class_size(c);
      unused_ids_.push_back(f[n]);  // capacity reserved in take()
      ++n;
    }
    f.erase(f.begin(), f.begin() + static_cast<std::ptrdiff_t>(n));
  }
}

}  // namespace eddy::detail
