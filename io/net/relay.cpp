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
// splice is called directly rather than through the backend's splice op: on
// io_uring that op is always punted to an io-wq worker, which blocks in the
// socket read, one kernel thread per waiting direction (the trade tcp_proxy
// measured and refused). EINVAL from splice (a socket type without splice
// support) turns the direction into a copy, after what is in the pipe has been
// written out.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <eddy/io/fd.hpp>
#include <eddy/io/relay.hpp>

namespace eddy {
namespace {

using detail::stream_socket;

constexpr std::size_t min_pipe = 4096;
constexpr std::size_t max_pipe = std::size_t{1} << 20;

[[noreturn]] void fail(int err, const char* dir, const char* what) {
  throw std::system_error(err, std::system_category(),
                          std::string("eddy::relay ") + dir + ": " + what);
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

task<std::uint64_t> splice_direction(stream_socket& from, stream_socket& to, relay_options opts,
                                     const char* dir) {
  if (!opts.splice || from.receiving()) co_return co_await detail::relay_copy(from, to);
  auto [pipe_out, pipe_in] = make_pipe();
  if (opts.pipe_size != 0)
    (void)::fcntl(pipe_in.get(), F_SETPIPE_SZ, static_cast<int>(opts.pipe_size));  // EPERM: keep
  const int cap = ::fcntl(pipe_in.get(), F_GETPIPE_SZ);
  const std::size_t chunk = cap > 0 ? static_cast<std::size_t>(cap) : 65536;
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
      if (e == EINVAL) co_return moved + co_await detail::relay_copy(from, to);
      fail(e, dir, "reading the source (splice)");
    }
    if (n == 0) break;
    for (std::size_t left = static_cast<std::size_t>(n); left > 0;) {
      const ssize_t m = ::splice(pipe_out.get(), nullptr, to.fd(), nullptr, left,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m < 0) {
        const int e = errno;
        if (e == EAGAIN) {
          const auto ev = co_await eddy::poll(to.fd(), POLLOUT);
          (void)ev;
          continue;
        }
        if (e == EINTR) continue;
        if (e == EINVAL) {
          moved += co_await flush_pipe(pipe_out.get(), to, left);
          co_return moved + co_await detail::relay_copy(from, to);
        }
        fail(e, dir, "writing the destination (splice)");
      }
      left -= static_cast<std::size_t>(m);
      moved += static_cast<std::uint64_t>(m);
    }
  }
  to.shutdown_write();
  co_return moved;
}

// Names the direction in a failure of the copy path too, whose errors come from
// receive/write_all; cancellation passes through untouched.
task<std::uint64_t> direction(stream_socket& from, stream_socket& to, relay_options opts,
                              const char* dir) {
  try {
    co_return co_await splice_direction(from, to, opts, dir);
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
  auto [ab, ba] = co_await when_all(direction(a, b, opts, "a->b"), direction(b, a, opts, "b->a"));
  co_return relay_result{ab, ba};
}

}  // namespace eddy
