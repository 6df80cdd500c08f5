// eddy::relay between two stream sockets: one task per direction under when_all,
// each splicing socket -> pipe -> socket.
//
// A direction's protocol:
//  1. splice from the source into its empty pipe (non-blocking); EAGAIN waits for
//     POLLIN | POLLRDHUP on the source, 0 is end of stream;
//  2. splice the pipe out into the destination until it is empty; EAGAIN waits
//     for POLLOUT on the destination. So the pipe is empty whenever step 1 runs,
//     and an EAGAIN there can only be the socket's;
//  3. at end of stream, shutdown(SHUT_WR) on the destination, and the direction
//     ends; the other one goes on.
// splice is called directly (SIGPIPE kept away, see splice_out) rather than through the backend's
// splice op: on io_uring that op is always punted to an io-wq worker, which blocks in the socket
// read, one kernel thread per waiting direction (the trade tcp_proxy measured and refused). EINVAL
// from splice (a socket type without splice support) turns the direction into a copy, after what is
// in the pipe has been written out.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <eddy/io/fd.hpp>
#include <eddy/io/relay.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace eddy {
namespace {

using detail::stream_socket;

constexpr std::size_t min_pipe = 4096;
constexpr std::size_t max_pipe = std::size_t{1} << 20;

[[noreturn]] void fail(int err, const char* dir, const char* what) {
  throw std::system_error(err, std::system_category(),
                          std::string("eddy::relay ") + dir + ": " + what);
}

// splice(2) into a socket has no MSG_NOSIGNAL: into a reset socket it raises
// SIGPIPE as well as failing with EPIPE. The first loop sets SIGPIPE to ignored
// (runtime/loop.cpp), but a program may have installed the default action or a
// handler since; then each splice out runs with SIGPIPE blocked in this thread,
// and a SIGPIPE it raised is taken off the pending set before unblocking (the way
// libcurl keeps SIGPIPE from OpenSSL's writes). Checked once per relay.
bool sigpipe_would_fire() noexcept {
  struct sigaction sa {};
  if (::sigaction(SIGPIPE, nullptr, &sa) != 0) return true;
  return (sa.sa_flags & SA_SIGINFO) != 0 || sa.sa_handler != SIG_IGN;
}

ssize_t splice_out(int pipe_out, int sock, std::size_t len, bool guard) noexcept {
  constexpr unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
  if (!guard) return ::splice(pipe_out, nullptr, sock, nullptr, len, flags);
  sigset_t pipe_set, old;
  ::sigemptyset(&pipe_set);
  ::sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigset_t pending;
  ::sigpending(&pending);
  const bool was_pending = ::sigismember(&pending, SIGPIPE) == 1;
  const ssize_t r = ::splice(pipe_out, nullptr, sock, nullptr, len, flags);
  const int e = errno;
  if (r < 0 && e == EPIPE && !was_pending) {
    const timespec now{};
    (void)::sigtimedwait(&pipe_set, nullptr, &now);
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = e;
  return r;
}

// Moves what is left in the pipe to `to` by read and write: the destination
// refused splice with bytes already taken from the source.
task<std::uint64_t> flush_pipe(int pipe_out, stream_socket& to, std::size_t left) {
  std::vector<std::byte> buf(left);
  std::size_t got = 0;
  while (got < left) {
    const ssize_t r = ::read(pipe_out, buf.data() + got, left - got);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // the pipe holds exactly `left` bytes; nothing else writes to it
    }
  }
  co_await to.write_all(std::span<const std::byte>(buf.data(), got));
  co_return got;
}

task<std::uint64_t> splice_direction(stream_socket& from, stream_socket& to, bool splice,
                                     std::size_t pipe_size, bool guard_sigpipe,
                                     std::uint64_t* progress, const char* dir) {
  if (!splice || from.receiving()) co_return co_await detail::relay_copy(from, to, progress);
  // No structured bindings in coroutines: GCC 12 mishandles them across suspensions.
  std::pair<unique_fd, unique_fd> pipe = make_pipe();
  unique_fd& pipe_out = pipe.first;
  unique_fd& pipe_in = pipe.second;
  std::size_t chunk = 65536;  // the kernel's default pipe: 16 pages
  if (pipe_size != 0) {
    // EPERM (past the user's pipe quota) keeps the default size.
    const int cap = ::fcntl(pipe_in.get(), F_SETPIPE_SZ, static_cast<int>(pipe_size));
    if (cap > 0) chunk = static_cast<std::size_t>(cap);
  }
  std::uint64_t moved = 0;
  for (;;) {
    const ssize_t n = ::splice(from.fd(), nullptr, pipe_in.get(), nullptr, chunk,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) {
      const int e = errno;
      if (e == EAGAIN) {
        const auto ev = co_await eddy::poll(from.fd(), POLLIN | POLLRDHUP);
        (void)ev;
        continue;
      }
      if (e == EINTR) continue;
      if (e == EINVAL) co_return moved + co_await detail::relay_copy(from, to, progress);
      fail(e, dir, "reading the source (splice)");
    }
    if (n == 0) break;
    for (std::size_t left = static_cast<std::size_t>(n); left > 0;) {
      const ssize_t m = splice_out(pipe_out.get(), to.fd(), left, guard_sigpipe);
      if (m < 0) {
        const int e = errno;
        if (e == EAGAIN) {
          const auto ev = co_await eddy::poll(to.fd(), POLLOUT);
          (void)ev;
          continue;
        }
        if (e == EINTR) continue;
        if (e == EINVAL) {
          const std::uint64_t flushed = co_await flush_pipe(pipe_out.get(), to, left);
          if (progress != nullptr) *progress += flushed;
          co_return moved + flushed + co_await detail::relay_copy(from, to, progress);
        }
        fail(e, dir, "writing the destination (splice)");
      }
      left -= static_cast<std::size_t>(m);
      moved += static_cast<std::uint64_t>(m);
      if (progress != nullptr) *progress += static_cast<std::uint64_t>(m);
    }
  }
  to.shutdown_write();
  co_return moved;
}

// Names the direction in a failure of the copy path too, whose errors come from
// receive/write_all; cancellation passes through untouched.
task<std::uint64_t> direction(stream_socket& from, stream_socket& to, relay_options opts,
                              bool guard_sigpipe, std::uint64_t* progress, const char* dir) {
  try {
    co_return co_await splice_direction(from, to, opts.splice, opts.pipe_size, guard_sigpipe,
                                        progress, dir);
  } catch (const std::system_error& e) {
    std::string_view what = e.what();
    if (what.starts_with("eddy::relay")) throw;
    // system_error appends ": <strerror>" to its text; the new one will again.
    const std::string tail = ": " + e.code().message();
    if (what.ends_with(tail)) what.remove_suffix(tail.size());
    throw std::system_error(e.code(), std::string("eddy::relay ") + dir + ": " + std::string(what));
  }
}

}  // namespace

task<relay_result> relay(stream_socket& a, stream_socket& b, relay_options opts) {
  if (!a || !b) throw std::invalid_argument("eddy::relay: a stream is closed");
  if (a.fd() == b.fd()) throw std::invalid_argument("eddy::relay: a and b are the same socket");
  if (opts.pipe_size != 0 && (opts.pipe_size < min_pipe || opts.pipe_size > max_pipe))
    throw std::invalid_argument("eddy::relay: pipe_size " + std::to_string(opts.pipe_size) +
                                " is outside 4096..1048576 (0 = the kernel's default)");
  relay_result* p = opts.progress;
  const bool guard = opts.splice && sigpipe_would_fire();
  std::tuple<std::uint64_t, std::uint64_t> moved =
      co_await when_all(direction(a, b, opts, guard, p ? &p->a_to_b : nullptr, "a->b"),
                        direction(b, a, opts, guard, p ? &p->b_to_a : nullptr, "b->a"));
  co_return relay_result{std::get<0>(moved), std::get<1>(moved)};
}

}  // namespace eddy
