// One I/O operation, as the backends see it (DESIGN.md §4). It lives in the frame
// of the coroutine awaiting it; the backend owns it from submit() until it calls
// `complete` with `more` false, and the coroutine is resumed only after that: the
// kernel is done with the buffers and the fd before anyone can free them.
//
// Every field is something any backend can fill (io_uring, the readiness engine
// under epoll and libuv): no backend's raw flags travel in an op.
#pragma once

#include <cstddef>
#include <cstdint>

namespace eddy::detail {

enum class op_code : std::uint8_t {
  nop,
  read,      // fd, buf, len, offset (UINT64_MAX: current position)
  write,     // fd, buf, len, offset
  readv,     // fd, buf = iovec*, len = iovcnt, offset
  writev,    // fd, buf = iovec*, len = iovcnt, offset
  poll,      // fd, flags = poll mask, len = poll_fd_unowned or 0; res = revents
  close,     // fd; in-flight ops on fd are cancelled first
  accept,    // fd, buf = sockaddr*, aux = socklen_t*, flags = accept4 flags
  connect,   // fd, buf = sockaddr*, len = socklen
  recv,      // fd, buf, len, flags = MSG_*
  send,      // fd, buf, len, flags = MSG_* (MSG_NOSIGNAL always added)
  recvmsg,   // fd, buf = msghdr*, flags
  sendmsg,   // fd, buf = msghdr*, flags (MSG_NOSIGNAL always added)
  shutdown,  // fd, flags = how
  splice,    // fd in, aux_fd out, len, flags
  // Multishot accept (caps().multishot_accept): `complete` runs once per accepted
  // fd with `more` set while the op stays armed; the op is in flight until a
  // completion with `more` false (an error, or cancel).
  accept_multi,  // fd, flags = accept4 flags
  // Multishot recv into the backend's receive buffers (backend::recv_buffers), for
  // stream sockets: each completion with data names a buffer (`has_buffer`,
  // `buffer_id`, bytes starting at `aux`) that the receiver must hand back with
  // buffer_ring::recycle, once per completion. No
  // buffer is held while the socket is idle. In flight until a completion with
  // `more` false (EOF, an error, -ENOBUFS when the buffers ran out, or a cancel).
  recv_multi,    // fd, len = most bytes per completion (the receive limit), flags = MSG_*
  // File-system operations (eddy::fs). A backend that can run them without
  // blocking its thread says so in caps().file_ops (io_uring: native ops); the
  // others complete them inline with -EOPNOTSUPP and eddy::fs runs the same op
  // on the blocking pool instead (io/fs/blocking_op.cpp). `fd` is a directory fd
  // or AT_FDCWD (negative) for the path ops; paths are NUL-terminated and stay
  // alive, like every buffer, until the op completes.
  openat,    // fd = dirfd, buf = path, aux = struct open_how* (Linux openat2 ABI); res = fd
  statx,     // fd = dirfd, buf = path, aux = struct statx*, flags = AT_*, len = STATX_* mask
  fsync,     // fd, flags = fsync_datasync or 0
  renameat,  // fd = old dirfd, buf = old path, aux_fd = new dirfd, aux = new path, flags = RENAME_*
  unlinkat,  // fd = dirfd, buf = path, flags = AT_REMOVEDIR or 0
  mkdirat,   // fd = dirfd, buf = path, len = mode
};

/// How many op codes there are (op_code's values are 0 to op_code_count - 1).
inline constexpr std::size_t op_code_count = static_cast<std::size_t>(op_code::mkdirat) + 1;

/// poll's len: the fd is not eddy's. Its owner may close it (and the number may
/// name another file) between two polls without telling eddy, so the backend
/// keeps nothing for it that a later poll would trust: a readiness backend
/// registers the fd afresh for each wait that finds nobody else waiting on it
/// (epoll: one EPOLL_CTL_MOD, or ADD when the kernel has no registration for the
/// file the number names now). io_uring's poll holds the file and ignores it.
inline constexpr unsigned poll_fd_unowned = 1;

/// fsync's flags: sync the data (and the metadata needed to read it) only.
inline constexpr unsigned fsync_datasync = 1;

/// True for the ops that take a directory fd, where AT_FDCWD (negative) is valid.
constexpr bool is_path_op(op_code c) noexcept {
  return c == op_code::openat || c == op_code::statx || c == op_code::renameat ||
         c == op_code::unlinkat || c == op_code::mkdirat;
}
constexpr bool is_file_op(op_code c) noexcept {
  return is_path_op(c) || c == op_code::fsync;
}

enum class op_state : std::uint8_t { idle, in_flight, done };

struct io_op {
  op_code code = op_code::nop;
  op_state state = op_state::idle;
  bool cancel_requested = false;
  int fd = -1;
  int res = 0;              // bytes, fd, revents, or -errno
  unsigned flags = 0;
  unsigned len = 0;
  // Multishot ops: set on a completion after which the op stays armed (more
  // completions follow); false on the final one, after which the op is done.
  bool more = false;
  // recv_multi: this completion's bytes are in receive buffer `buffer_id`.
  bool has_buffer = false;
  std::uint16_t buffer_id = 0;
  // A hint: the op is big (a large file read or write) and worth running off the
  // submitting thread, so the loop goes on meanwhile (io_uring: IOSQE_ASYNC, the
  // kernel's io-wq threads copy the bytes). Backends without such threads ignore it.
  bool run_async = false;
  // Backend-private (io_uring): this send went zero-copy; it completes on the
  // kernel's notification that it let go of the buffer, with the result the
  // first completion carried.
  bool zero_copy = false;
  // Backend-private (io_uring): the op came back -EAGAIN and waits for readiness
  // in a poll of the backend's own before it is issued again.
  bool poll_wait = false;
  int aux_fd = -1;
  // recv_multi: backend-private (the readiness engine's current read size).
  unsigned rx_size = 0;
  void* buf = nullptr;
  void* aux = nullptr;
  std::uint64_t offset = UINT64_MAX;
  // Called on the loop thread when the backend is done with the op. Must not
  // resume a coroutine inline: it schedules the resumption.
  void (*complete)(io_op*) noexcept = nullptr;
  // Backend-private links (the readiness engine's per-fd wait lists).
  io_op* link_next = nullptr;
  io_op* link_prev = nullptr;
};

}  // namespace eddy::detail
