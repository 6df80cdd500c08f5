// One I/O operation, as the backends see it (DESIGN.md §4). It lives in the frame
// of the coroutine awaiting it; the backend owns it from submit() until it calls
// `complete`, and the coroutine is resumed only after that: the kernel is done
// with the buffers and the fd before anyone can free them.
#pragma once

#include <cstdint>

namespace eddy::detail {

enum class op_code : std::uint8_t {
  nop,
  read,      // fd, buf, len, offset (UINT64_MAX: current position)
  write,     // fd, buf, len, offset
  readv,     // fd, buf = iovec*, len = iovcnt, offset
  writev,    // fd, buf = iovec*, len = iovcnt, offset
  poll,      // fd, flags = poll mask; res = revents
  close,     // fd; in-flight ops on fd are cancelled first
  accept,    // fd, buf = sockaddr*, aux = socklen_t*, flags = accept4 flags
  connect,   // fd, buf = sockaddr*, len = socklen
  recv,      // fd, buf, len, flags = MSG_*
  send,      // fd, buf, len, flags = MSG_* (MSG_NOSIGNAL always added)
  recvmsg,   // fd, buf = msghdr*, flags
  sendmsg,   // fd, buf = msghdr*, flags (MSG_NOSIGNAL always added)
  shutdown,  // fd, flags = how
  splice,    // fd in, aux_fd out, len, flags
  // Multishot accept (io_uring, caps().multishot_accept): `complete` runs once per
  // accepted fd with IORING_CQE_F_MORE in cqe_flags while the op stays armed; the
  // op is in flight until a completion without F_MORE (an error, or cancel).
  accept_multi,  // fd, flags = accept4 flags
  // Multishot recv into the backend's provided-buffer ring (backend::recv_buffers):
  // each completion names a buffer (IORING_CQE_F_BUFFER, id in the upper 16 bits
  // of cqe_flags) that the receiver must hand back with buffer_ring::recycle. No
  // buffer is held while the socket is idle. In flight until a completion without
  // F_MORE (EOF, an error, -ENOBUFS when the ring ran dry, or a cancel).
  recv_multi,    // fd, flags = MSG_*
};

enum class op_state : std::uint8_t { idle, in_flight, done };

struct io_op {
  op_code code = op_code::nop;
  op_state state = op_state::idle;
  bool cancel_requested = false;
  int fd = -1;
  int res = 0;              // bytes, fd, revents, or -errno
  unsigned flags = 0;
  unsigned len = 0;
  unsigned cqe_flags = 0;   // io_uring CQE flags (IORING_CQE_F_MORE, buffer id)
  int aux_fd = -1;
  void* buf = nullptr;
  void* aux = nullptr;
  std::uint64_t offset = UINT64_MAX;
  // Called on the loop thread when the backend is done with the op. Must not
  // resume a coroutine inline: it schedules the resumption.
  void (*complete)(io_op*) noexcept = nullptr;
  // Backend-private links (the epoll backend's per-fd wait lists).
  io_op* link_next = nullptr;
  io_op* link_prev = nullptr;
};

}  // namespace eddy::detail
