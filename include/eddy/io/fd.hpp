// Awaitable operations on file descriptors (pipes, eventfds, sockets, files), and
// an owning fd type. Sockets and streams (io issue) are built on these.
#pragma once

#include <cerrno>
#include <climits>
#include <cstddef>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include <eddy/io/detail/io_op.hpp>
#include <eddy/runtime/detail/await_traits.hpp>
#include <eddy/runtime/detail/op_awaiter.hpp>
#include <eddy/runtime/loop.hpp>

namespace eddy {

namespace detail {

void close_fd_now(loop* l, int fd) noexcept;
[[noreturn]] void throw_errno(int err, const char* what, int fd);

struct [[nodiscard]] size_awaiter : op_awaiter {
  using op_awaiter::op_awaiter;
  std::size_t await_resume() {
    const int r = raw_result();
    if (r < 0) throw_errno(-r, what, op.fd);
    return static_cast<std::size_t>(r);
  }
};

struct [[nodiscard]] void_awaiter : op_awaiter {
  using op_awaiter::op_awaiter;
  void await_resume() {
    const int r = raw_result();
    if (r < 0) throw_errno(-r, what, op.fd);
  }
};

// Linux caps one read/write at 0x7ffff000 bytes anyway.
inline unsigned clamp_len(std::size_t n) noexcept {
  return n > 0x7ffff000u ? 0x7ffff000u : static_cast<unsigned>(n);
}

}  // namespace detail

/// Reads up to `buf.size()` bytes from `fd` (non-blocking fds, e.g. from
/// make_pipe). Returns the count; 0 means end of file. Throws std::system_error.
///
/// **Thread safety:** loop thread only; `buf` must stay valid until the await ends
/// (it does: the awaiting coroutine is suspended).
/// **Cancel safety:** cancel-safe: a cancelled read either read nothing
/// (cancelled_error) or returns what it read (and the cancellation is delivered at
/// the next await), so no byte is lost.
///
/// ```cpp
/// std::array<std::byte, 4096> b;
/// std::size_t n = co_await eddy::read(fd, b);
/// ```
inline detail::size_awaiter read(int fd, std::span<std::byte> buf) {
  return detail::size_awaiter(loop::current(), "eddy::read", detail::op_code::read, fd, buf.data(),
                              detail::clamp_len(buf.size()));
}

/// Writes up to `buf.size()` bytes to `fd`; returns how many were written (may be
/// fewer). SIGPIPE is never raised for sockets; a closed pipe gives EPIPE.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** a cancelled write wrote nothing (cancelled_error) or returns
/// the count it wrote.
inline detail::size_awaiter write(int fd, std::span<const std::byte> buf) {
  return detail::size_awaiter(loop::current(), "eddy::write", detail::op_code::write, fd,
                              const_cast<std::byte*>(buf.data()), detail::clamp_len(buf.size()));
}

/// Writes all of `buf`, resuming partial writes. Throws std::system_error.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** not cancel-safe as a whole: on cancellation an unknown prefix
/// has been written (as with tokio's write_all).
task<void> write_all(int fd, std::span<const std::byte> buf);
/// write_all of the characters of `text` (a std::string, a literal, a
/// string_view); they must stay alive until the write is done. As the span form.
inline task<void> write_all(int fd, std::string_view text) {
  return write_all(fd, std::as_bytes(std::span(text.data(), text.size())));
}

/// Waits until `fd` is ready for `events` (POLLIN, POLLOUT, ...); returns the
/// ready events (POLLERR and POLLHUP are always reported).
///
/// **Thread safety:** loop thread only. **Cancel safety:** cancel-safe.
inline detail::size_awaiter poll(int fd, short events) {
  return detail::size_awaiter(loop::current(), "eddy::poll", detail::op_code::poll, fd, nullptr, 0,
                              static_cast<unsigned short>(events));
}

/// poll() for an fd that eddy does not own and that its owner may close, or
/// reuse for another file, between two polls without going through eddy: an
/// embedding's fds (eddyloop's sock_* waits on Python's sockets), a library's.
/// Each wait that finds nobody else waiting on `fd` asks the kernel afresh (epoll:
/// one EPOLL_CTL_MOD, or ADD for a new file), so no state kept from an earlier
/// file can hide readiness; an old file's registration that lingers (while a
/// dup of it lives elsewhere) raises only events that are dropped. plain poll()
/// trusts what eddy knows of the number, which is right only for fds closed
/// through eddy (docs/fd_ownership.md). Do not close `fd` while this waits.
///
/// **Thread safety:** loop thread only. **Cancel safety:** cancel-safe.
inline detail::size_awaiter poll_unowned(int fd, short events) {
  return detail::size_awaiter(loop::current(), "eddy::poll_unowned", detail::op_code::poll, fd,
                              nullptr, detail::poll_fd_unowned, static_cast<unsigned short>(events));
}

/// Closes `fd`, first cancelling every operation in flight on it (they resume
/// with cancelled_error). Throws std::system_error if close fails (the fd is
/// released regardless).
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** not a cancellation point: a task with a cancel pending (or
/// cancelled while it waits) still closes the fd, and meets the cancel at its next
/// cancellation point.
inline detail::void_awaiter close(int fd) {
  return detail::void_awaiter(loop::current(), "eddy::close", detail::op_code::close, fd);
}

/// An owned file descriptor. The destructor closes it at once, cancelling any
/// operation still in flight on it (those resume with cancelled_error); prefer
/// `co_await f.close()` to learn of close errors.
///
/// **Thread safety:** a plain move-only value; ops on it run on one loop. It may be
/// reset or destroyed on any loop or thread: a loop that watches the fd gets the
/// close and ends its watch first (docs/fd_ownership.md). Never close a watched fd
/// with a bare ::close().
/// **Cancel safety:** see `close`.
class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset() noexcept {
    if (fd_ >= 0) detail::close_fd_now(loop::current_or_null(), std::exchange(fd_, -1));
  }
  /// Awaitable close (see eddy::close); the object is empty afterwards.
  detail::void_awaiter close() { return eddy::close(std::exchange(fd_, -1)); }

 private:
  int fd_ = -1;
};

/// A non-blocking, close-on-exec pipe: {read end, write end}.
/// **Thread safety:** any thread. **Cancel safety:** not awaitable.
std::pair<unique_fd, unique_fd> make_pipe();

}  // namespace eddy
