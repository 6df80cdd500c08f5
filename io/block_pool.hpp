// Receive blocks in user space: what io_uring's provided-buffer ring is, for the
// readiness engine (epoll, libuv) and for the receiver's plain-recv fallbacks. One
// pool class serves both (each loop's engine owns one; the receiver keeps one per
// thread), so there is one allocator of receive memory to tune and to cap.
//
// Blocks come in power-of-two classes from 16 KiB up to 4 MiB: a connection that
// streams reads into large blocks (fewer system calls, fewer completions, one big
// send in an echo), one of small messages into 16 KiB ones. A block is taken only
// when data is there to read, so an idle connection holds none. At most
// `max_bytes` are out at once, past which take() fails (-1) as an io_uring ring runs
// dry; free blocks are kept for reuse up to `keep_bytes` per class, beyond which a
// recycled block is freed, so the memory of a burst goes back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/backend.hpp"

namespace eddy::detail {

class block_pool final : public buffer_ring {
 public:
  static constexpr std::size_t min_block = 16 * 1024;
  static constexpr std::size_t max_block = 4 * 1024 * 1024;
  static constexpr unsigned classes = 9;  // 16 KiB << 0..8

  explicit block_pool(std::size_t max_bytes = 64u << 20, std::size_t keep_bytes = 4u << 20) noexcept
      : max_bytes_(max_bytes), keep_bytes_(keep_bytes) {}
  ~block_pool() override;
  block_pool(const block_pool&) = delete;
  block_pool& operator=(const block_pool&) = delete;

  /// A free block of at least `want` bytes (rounded up to a class, at most
  /// max_block), or -1 when max_bytes are out or memory is short.
  int take(std::size_t want = min_block) noexcept;
  /// The size of block `id` (its class).
  std::size_t capacity(unsigned id) const noexcept { return class_size(slots_[id].cls); }

  std::byte* data(unsigned id) noexcept override { return slots_[id].p; }
  std::size_t buffer_size() const noexcept override { return min_block; }
  void recycle(unsigned id) noexcept override;
  std::size_t available() const noexcept override {
    return out_bytes_ >= max_bytes_ ? 0 : (max_bytes_ - out_bytes_) / min_block;
  }
  /// Bytes in blocks handed out and not yet recycled.
  std::size_t bytes_out() const noexcept { return out_bytes_; }

  static constexpr std::size_t class_size(unsigned cls) noexcept { return min_block << cls; }
  static unsigned class_of(std::size_t want) noexcept;

 private:
  struct slot {
    std::byte* p = nullptr;
    std::uint8_t cls = 0;
  };
  std::vector<slot> slots_;               // by id; p == nullptr: id unused
  std::vector<unsigned> unused_ids_;      // ids whose block was freed
  std::vector<unsigned> free_[classes];   // ids of free blocks, by class (LIFO: warm)
  std::size_t free_bytes_[classes] = {};
  std::size_t count_[classes] = {};      // blocks of each class in existence
  std::size_t max_bytes_;
  std::size_t keep_bytes_;
  std::size_t out_bytes_ = 0;
};

}  // namespace eddy::detail
