// See async_fd.hpp.
#include "async_fd.hpp"

#include <poll.h>

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

task<int> async_write_all(int fd, const void* buf, std::size_t len) {
  // Through the backend like every other write (no ::write on the loop thread).
  // A pipe whose reader has gone gives EPIPE, not SIGPIPE: the first loop set
  // SIGPIPE to ignored (runtime/loop.cpp), the one place eddy handles it.
  try {
    co_await eddy::write_all(fd, {static_cast<const std::byte*>(buf), len});
  } catch (const std::system_error& e) {
    co_return -e.code().value();
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
