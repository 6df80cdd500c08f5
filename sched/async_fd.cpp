// See async_fd.hpp.
#include "async_fd.hpp"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <eddy/io/fd.hpp>
#include <eddy/runtime/loop.hpp>
#include <exception>
#include <span>
#include <system_error>

namespace eddy::detail {

task<int> async_read(int fd, void* buf, std::size_t len) {
  try {
    co_return static_cast<int>(co_await eddy::read(fd, {static_cast<std::byte*>(buf), len}));
  } catch (const std::system_error& e) {
    co_return -e.code().value();
  }
}

namespace {

// write() to a pipe whose reader has gone raises SIGPIPE in the writing thread, and
// SIGPIPE's default action kills the process; the caller should get EPIPE instead.
// Block it around the write and consume the one we caused, as libcurl does. (A
// socket would take MSG_NOSIGNAL; subprocess pipes are pipes.)
ssize_t write_without_sigpipe(int fd, const void* p, std::size_t n) {
  sigset_t pipe_only, old, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigpending(&pending);
  const bool already_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  const ssize_t r = ::write(fd, p, n);
  const int err = errno;
  if (r < 0 && err == EPIPE && !already_pending) {
    const timespec zero{0, 0};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return r;
}

}  // namespace

task<int> async_write_all(int fd, const void* buf, std::size_t len) {
  const auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    const ssize_t n = write_without_sigpipe(fd, p, len);
    if (n > 0) {
      p += n;
      len -= static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) co_return -errno;
    co_await eddy::poll(fd, POLLOUT);  // non-blocking fd: wait for room
  }
  co_return 0;
}

task<void> async_readable(int fd) {
  co_await eddy::poll(fd, POLLIN);
}

task<void> async_writable(int fd) {
  co_await eddy::poll(fd, POLLOUT);
}

task<std::vector<int>> run_all(std::vector<task<int>> jobs) {
  std::vector<join_handle<int>> running;
  running.reserve(jobs.size());
  for (task<int>& j : jobs) running.push_back(eddy::spawn(std::move(j)));
  std::vector<int> out;
  std::exception_ptr first;
  for (join_handle<int>& h : running) {
    if (first) h.cancel();
    // Await until the child has really finished: a cancellation delivered to us
    // must not let us return while it still uses the caller's buffers.
    for (;;) {
      try {
        int v = co_await h;
        if (!first) out.push_back(v);
        break;
      } catch (...) {
        if (!first) {
          first = std::current_exception();
          for (join_handle<int>& o : running) o.cancel();
        }
        if (h.done()) break;
      }
    }
  }
  if (first) std::rethrow_exception(first);
  co_return out;
}

}  // namespace eddy::detail
