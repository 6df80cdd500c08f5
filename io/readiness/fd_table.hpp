// A table of per-fd state indexed by the fd's number, grown a chunk of 512 slots
// at a time. Chunks never move, so a reference to one slot stays valid while
// another is added, and memory follows the highest fd in use in steps of one chunk
// (a vector that doubles touched up to twice the slots it held: at 10,000
// connections, 100 bytes per connection for a 64-byte slot). Loop thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace eddy::detail {

template <class T>
class fd_table {
 public:
  static constexpr std::size_t chunk_bits = 9;
  static constexpr std::size_t chunk_slots = std::size_t{1} << chunk_bits;

  /// The slot of `fd` if its chunk exists (it is then default-constructed or in
  /// use), else nullptr; nullptr for a negative fd.
  T* find(int fd) noexcept {
    if (fd < 0) return nullptr;
    const std::size_t c = static_cast<std::size_t>(fd) >> chunk_bits;
    return c < chunks_.size() && chunks_[c] ? &chunks_[c][static_cast<std::size_t>(fd) & (chunk_slots - 1)] : nullptr;
  }
  const T* find(int fd) const noexcept { return const_cast<fd_table*>(this)->find(fd); }
  /// The slot of `fd` (>= 0), whose chunk must exist (a slot handed out before).
  T& operator[](int fd) noexcept {
    const auto i = static_cast<std::size_t>(fd);
    return chunks_[i >> chunk_bits][i & (chunk_slots - 1)];
  }
  /// The slot of `fd` (>= 0), its chunk made first if need be.
  T& get(int fd) {
    const auto i = static_cast<std::size_t>(fd);
    const std::size_t c = i >> chunk_bits;
    if (c >= chunks_.size()) chunks_.resize(c + 1);
    if (!chunks_[c]) chunks_[c] = std::make_unique<T[]>(chunk_slots);
    return chunks_[c][i & (chunk_slots - 1)];
  }
  /// Calls f(fd, slot) for every slot of every chunk made.
  template <class F>
  void for_each(F&& f) {
    for (std::size_t c = 0; c < chunks_.size(); ++c)
      if (chunks_[c])
        for (std::size_t j = 0; j < chunk_slots; ++j) f(static_cast<int>((c << chunk_bits) | j), chunks_[c][j]);
  }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
};

}  // namespace eddy::detail
