// The readiness engine's receive buffers: what io_uring's provided-buffer ring is,
// in user space. recv_multi takes a block only when data is there (the engine
// reads after readiness), so a connection waiting for data holds none. Blocks are
// made on first use and kept for reuse; at most `max_blocks` exist at once (64 MiB
// of 16 KiB blocks), past which recv_multi ends with -ENOBUFS as io_uring's does
// when its ring runs dry, and the receiver falls back to a plain recv.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "io/backend.hpp"

namespace eddy::detail {

class block_pool final : public buffer_ring {
 public:
  static constexpr std::size_t block_size = 16 * 1024;
  static constexpr unsigned max_blocks = 4096;

  block_pool() = default;
  ~block_pool() override;
  block_pool(const block_pool&) = delete;
  block_pool& operator=(const block_pool&) = delete;

  /// A free block's id, or -1 when max_blocks are out.
  int take() noexcept;
  /// Gives free blocks beyond `keep` back to the heap (an idle loop after a burst).
  void trim(std::size_t keep) noexcept;

  std::byte* data(unsigned id) noexcept override { return blocks_[id]; }
  std::size_t buffer_size() const noexcept override { return block_size; }
  void recycle(unsigned id) noexcept override { free_.push_back(id); }
  std::size_t available() const noexcept override {
    return free_.size() + (max_blocks - blocks_.size());
  }

 private:
  std::vector<std::byte*> blocks_;  // by id
  std::vector<unsigned> free_;
};

}  // namespace eddy::detail
