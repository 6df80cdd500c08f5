// See uring_buffer_ring.hpp.
#include "io/uring/uring_buffer_ring.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace eddy::detail {

uring_buffer_ring::uring_buffer_ring(io_uring* ring, unsigned short group, unsigned entries,
                                     std::size_t size, bool incremental)
    : ring_(ring), group_(group), entries_(entries), size_(size), available_(entries) {
  ring_bytes_ = entries * sizeof(io_uring_buf);
  void* m = ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::system_error(errno, std::system_category(), "eddy: buffer ring mmap");
  br_ = static_cast<io_uring_buf_ring*>(m);
  // Address space only: pages become resident as data lands in them.
  void* b = ::mmap(nullptr, entries * size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (b == MAP_FAILED) {
    const int e = errno;
    ::munmap(br_, ring_bytes_);
    throw std::system_error(e, std::system_category(), "eddy: receive buffers mmap");
  }
  bufs_ = static_cast<std::byte*>(b);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
  reg.ring_entries = entries;
  reg.bgid = group_;
  int r = -EINVAL;
  if (incremental) {
    reg.pad = IOU_PBUF_RING_INC;  // the `flags` field of newer headers
    r = io_uring_register_buf_ring(ring_, &reg, 0);
    inc_ = r == 0;
    reg.pad = 0;
  }
  if (r == -EINVAL) r = io_uring_register_buf_ring(ring_, &reg, 0);
  if (r != 0) {
    ::munmap(bufs_, entries * size);
    ::munmap(br_, ring_bytes_);
    throw std::system_error(-r, std::system_category(), "eddy: io_uring_register_buf_ring");
  }
  io_uring_buf_ring_init(br_);
  if (!inc_) {
    for (unsigned i = 0; i < entries; ++i)
      io_uring_buf_ring_add(br_, data(i), static_cast<unsigned>(size_), static_cast<unsigned short>(i),
                            io_uring_buf_ring_mask(entries_), static_cast<int>(i));
    io_uring_buf_ring_advance(br_, static_cast<int>(entries));
    return;
  }
  st_.resize(entries);
  // About 1 MiB on the ring (the size of a core's L2 cache here), at least two.
  constexpr std::size_t hot_bytes = 1u << 20;
  hot_posted_ = static_cast<unsigned>(std::max<std::size_t>(2, hot_bytes / size_));
  if (hot_posted_ > entries_) hot_posted_ = entries_;
  spare_.reserve(entries_);
  for (unsigned i = entries_; i-- > 0;) spare_.push_back(i);  // id 0 is taken first
  refill();
}

uring_buffer_ring::~uring_buffer_ring() {
  io_uring_unregister_buf_ring(ring_, group_);
  ::munmap(bufs_, entries_ * size_);
  ::munmap(br_, ring_bytes_);
}

std::byte* uring_buffer_ring::filled(unsigned id, int res, unsigned flags) noexcept {
  if (!inc_) {
    --available_;
    return data(id);
  }
  state& s = st_[id];
  std::byte* p = data(id) + s.filled;
  ++s.pieces;
  if (res > 0) {
    s.filled += static_cast<std::uint32_t>(res);
    // A completion of 0 bytes (EOF) commits nothing: the kernel still owns the
    // buffer whatever the flag says (io_kbuf_inc_commit, Linux 6.12).
    if (!(flags & IORING_CQE_F_BUF_MORE)) {
      s.kernel_done = true;
      --available_;
      --posted_;
      refill();
    }
  }
  return p;
}

void uring_buffer_ring::post(unsigned id) noexcept {
  io_uring_buf_ring_add(br_, data(id), static_cast<unsigned>(size_), static_cast<unsigned short>(id),
                        io_uring_buf_ring_mask(entries_), 0);
  io_uring_buf_ring_advance(br_, 1);
}

void uring_buffer_ring::refill() noexcept {
  while (posted_ < hot_posted_ && !spare_.empty()) {
    post(spare_.back());
    spare_.pop_back();
    ++posted_;
  }
}

void uring_buffer_ring::ran_dry() noexcept {
  if (!inc_ || spare_.empty()) return;
  hot_posted_ = hot_posted_ * 2 < entries_ ? hot_posted_ * 2 : entries_;
  refill();
}

void uring_buffer_ring::give_back(unsigned id) noexcept {
  ++available_;
  if (!inc_) {
    post(id);
    return;
  }
  spare_.push_back(id);  // capacity reserved for every id: no allocation
  refill();
}

void uring_buffer_ring::recycle(unsigned id) noexcept {
  if (!inc_) {
    give_back(id);
    return;
  }
  state& s = st_[id];
  if (--s.pieces == 0 && s.kernel_done) {
    s = state{};
    give_back(id);
  }
}

}  // namespace eddy::detail
