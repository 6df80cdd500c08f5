// io_uring's provided-buffer ring (5.19+): one group of buffers that every
// multishot recv of a loop draws from. The kernel picks a buffer only when data
// arrives, so a waiting connection holds none; the receiver hands each piece back
// with recycle() once its bytes are consumed.
//
// Two shapes, probed at registration:
//  - Incremental (IOU_PBUF_RING_INC, Linux 6.12): large buffers (default 32 ×
//    256 KiB) that the kernel fills piece by piece: a completion takes only the
//    bytes it received from the head buffer, and flags IORING_CQE_F_BUF_MORE while
//    the buffer has room left. Small messages pack into one buffer, a stream gets
//    up to a whole buffer per completion. A buffer goes back on the ring when the
//    kernel has moved past it (a completion without BUF_MORE) and every piece
//    handed out from it has been recycled.
//  - Whole buffers (older kernels, or loop_options::uring_incremental = false):
//    each completion uses one buffer (default 256 × 16 KiB), recycled at once.
//
// Incremental rings keep only a few buffers (`hot_posted`, about 1 MiB) on the
// ring; the rest wait in a last-in-first-out list and go on the ring as the kernel
// finishes one, the most recently freed first. The ring is a FIFO: with every
// buffer posted the kernel would walk all 8 MiB in turn and each receive would copy
// into memory long gone from the cache. Measured on E5 (4 connections streaming
// 16 KiB messages): the kernel's receive copy fell from 28-31 % to 18-22 % of the
// server's CPU (bench/results/bulk-hot-buffers.md). Capacity is unchanged:
// a receive that finds the ring empty while spares wait doubles the hot set, so a
// loop whose traffic outruns 1 MiB per turn soon posts what it needs.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/backend.hpp"

// Debian's liburing 2.3 predates these; values from the kernel's UAPI
// (include/uapi/linux/io_uring.h), Linux 6.12.
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

namespace eddy::detail {

class uring_buffer_ring final : public buffer_ring {
 public:
  /// Registers the ring as buffer group `group`. With `incremental`, tries
  /// IOU_PBUF_RING_INC first and falls back to whole buffers on -EINVAL (a
  /// kernel before 6.12). Throws std::system_error.
  uring_buffer_ring(io_uring* ring, unsigned short group, unsigned entries, std::size_t size,
                    bool incremental);
  ~uring_buffer_ring() override;
  uring_buffer_ring(const uring_buffer_ring&) = delete;
  uring_buffer_ring& operator=(const uring_buffer_ring&) = delete;

  std::byte* data(unsigned id) noexcept override {
    return bufs_ + static_cast<std::size_t>(id) * size_;
  }
  std::size_t buffer_size() const noexcept override { return size_; }
  std::size_t available() const noexcept override { return available_; }
  void recycle(unsigned id) noexcept override;
  bool incremental() const noexcept { return inc_; }

  /// A completion named buffer `id` with `res` bytes and CQE `flags`: returns
  /// where its bytes start (and, incremental, notes the piece handed out).
  std::byte* filled(unsigned id, int res, unsigned flags) noexcept;

  /// A receive found the ring empty (-ENOBUFS). Incremental: if spare buffers
  /// were held back, the traffic outran the hot set, so it doubles (up to every
  /// buffer) and the spares go on the ring.
  void ran_dry() noexcept;

 private:
  void give_back(unsigned id) noexcept;
  void post(unsigned id) noexcept;
  void refill() noexcept;

  io_uring* ring_;
  unsigned short group_;
  unsigned entries_;
  std::size_t size_;
  std::size_t available_;
  std::size_t ring_bytes_ = 0;
  io_uring_buf_ring* br_ = nullptr;
  std::byte* bufs_ = nullptr;
  bool inc_ = false;
  // Incremental only, by buffer id: bytes the kernel has filled, pieces out, and
  // whether the kernel is done with it.
  struct state {
    std::uint32_t filled = 0;
    std::uint32_t pieces = 0;
    bool kernel_done = false;
  };
  std::vector<state> st_;
  // Incremental only: buffers not on the ring and not handed out, the most
  // recently freed last; and how many are on the ring (at most hot_posted_).
  std::vector<unsigned> spare_;
  unsigned posted_ = 0;
  unsigned hot_posted_ = 0;
};

}  // namespace eddy::detail
