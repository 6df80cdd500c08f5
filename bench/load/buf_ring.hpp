// A provided-buffer ring for the io_uring load tools (echo_load's uring engine and
// uring_echo_server). liburing 2.3 (Debian 12) has no io_uring_setup_buf_ring, so
// the ring is mapped and registered by hand here, once for both.
#pragma once

#include <liburing.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace load {

/// Maps a ring of `entries` buffer slots (a power of two), initialises it and
/// registers it with `ring` as buffer group `bgid`. Returns nullptr and sets
/// `err` (a positive errno) on failure, leaving nothing mapped. Free a returned
/// ring with unmap_buf_ring (after io_uring_queue_exit, or unregistering it).
inline io_uring_buf_ring* map_buf_ring(io_uring* ring, unsigned entries, unsigned short bgid, int& err) {
  const std::size_t bytes = std::size_t{entries} * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    err = errno;
    return nullptr;
  }
  auto* br = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(br);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
  reg.ring_entries = entries;
  reg.bgid = bgid;
  if (int e = io_uring_register_buf_ring(ring, &reg, 0); e != 0) {
    munmap(mem, bytes);
    err = -e;
    return nullptr;
  }
  return br;
}

inline void unmap_buf_ring(io_uring_buf_ring* br, unsigned entries) {
  if (br != nullptr) munmap(br, std::size_t{entries} * sizeof(io_uring_buf));
}

}  // namespace load
