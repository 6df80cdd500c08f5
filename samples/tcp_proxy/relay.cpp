// The relay of one proxied connection.
//
// Three tasks share a `link`: two directions (client -> upstream, upstream ->
// client) and, in the relay's own frame, the idle watch. They live in one task
// group, so:
//  1. a direction that reads EOF half-closes the other side and ends; the other
//     direction keeps going (a client may send its request, shut down its write
//     side, and still read the whole reply);
//  2. a direction that fails (reset, EPIPE) ends the group: the other direction is
//     cancelled, both sockets are closed;
//  3. the idle watch wakes when the last activity is `idle_timeout` old and
//     cancels both directions; any byte moved pushes the deadline forward, so the
//     watch costs one timer per idle period, not one per read;
//  4. the streams live in relay()'s frame and the group is always joined before
//     that frame ends, so no direction outlives the sockets it uses.
#include "tcp_proxy/relay.hpp"

#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <eddy/io/fd.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/task_group.hpp>
#include <eddy/runtime/time.hpp>
#include <system_error>
#include <type_traits>

namespace tcp_proxy {
namespace {

using clock = std::chrono::steady_clock;

struct link {
  clock::time_point last_activity = clock::now();
  int open_directions = 2;
  eddy::event both_done;

  void touch() noexcept { last_activity = clock::now(); }
  void direction_done() noexcept {
    if (--open_directions == 0) both_done.set();
  }
};

eddy::task<void> close(side& s) {
#ifdef EDDY_SAMPLE_TLS
  // close() sends close_notify unless shutdown_write already did, or the stream broke.
  if (s.is_tls()) co_await s.tls.close();
#endif
  co_await s.tcp.close();
}

// Copies through the loop-lent receive buffers: an idle direction holds no buffer
// (io_uring's provided-buffer ring), a busy one holds the chunk being written. A
// TLS side decrypts into a record-sized block of its own and encrypts on write.
// A template over the two sides' types, so a plain relay pays nothing for TLS.
template <class From, class To>
eddy::task<void> copy_loop(link& l, From& from, To& to) {
  for (;;) {
    eddy::recv_buffer chunk = co_await from.receive();
    if (chunk.empty()) break;
    l.touch();
    // write_some rather than write_all: every partial write into a slow reader is
    // progress, and must keep the idle timeout away.
    while (!chunk.empty()) {
      const std::size_t n = co_await to.write_some(chunk.data());
      chunk.consume(n);
      l.touch();
    }
  }
  // EOF forwarded: a FIN, or over TLS close_notify and then a FIN.
  if constexpr (std::is_same_v<To, eddy::tcp_stream>)
    to.shutdown_write();
  else
    co_await to.shutdown_write();
  l.direction_done();
}

eddy::task<void> copy_direction(link& l, side& from, side& to) {
#ifdef EDDY_SAMPLE_TLS
  if (from.is_tls() && to.is_tls()) co_return co_await copy_loop(l, from.tls, to.tls);
  if (from.is_tls()) co_return co_await copy_loop(l, from.tls, to.tcp);
  if (to.is_tls()) co_return co_await copy_loop(l, from.tcp, to.tls);
#endif
  co_await copy_loop(l, from.tcp, to.tcp);
}

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::system_category(), what);
}

// Zero-copy: socket -> pipe -> socket with splice(2), the bytes never entering
// user space. The syscalls are made here, non-blocking, and only readiness is
// awaited (eddy::poll), on both backends: io_uring's own SPLICE op is always
// punted to an io-wq worker thread that blocks in the socket read, one kernel
// thread per waiting direction, which is the wrong trade for a proxy that holds
// many idle connections. The pipe (64 KiB by default) is the bound on what we
// hold.
eddy::task<void> splice_pipe(link& l, eddy::tcp_stream& from, eddy::tcp_stream& to) {
  auto [pipe_out, pipe_in] = eddy::make_pipe();
  constexpr std::size_t chunk = 64 * 1024;
  for (;;) {
    // The pipe is empty here, so EAGAIN can only mean the socket has nothing.
    const ssize_t n = ::splice(from.fd(), nullptr, pipe_in.get(), nullptr, chunk,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) {
      if (errno == EAGAIN) {
        co_await eddy::poll(from.fd(), POLLIN | POLLRDHUP);
        continue;
      }
      if (errno == EINTR) continue;
      throw_errno("splice from socket");
    }
    if (n == 0) break;
    l.touch();
    for (ssize_t left = n; left > 0;) {
      const ssize_t m = ::splice(pipe_out.get(), nullptr, to.fd(), nullptr,
                                 static_cast<std::size_t>(left), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m < 0) {
        if (errno == EAGAIN) {
          co_await eddy::poll(to.fd(), POLLOUT);
          continue;
        }
        if (errno == EINTR) continue;
        throw_errno("splice to socket");
      }
      left -= m;
      l.touch();
    }
  }
  to.shutdown_write();
  l.direction_done();
}

eddy::task<void> splice_direction(link& l, side& from, side& to) {
  co_await splice_pipe(l, from.tcp, to.tcp);
}

eddy::task<void> wait_for(eddy::event& e) {
  co_await e.wait();
}

eddy::task<relay_end> run_relay(eddy::task_group& g, link& l, side& client, side& upstream,
                                relay_options opts) {
  auto direction = opts.splice ? &splice_direction : &copy_direction;
  g.spawn(direction(l, client, upstream)).detach();
  g.spawn(direction(l, upstream, client)).detach();
  if (opts.idle_timeout.count() == 0) {
    co_await l.both_done.wait();
    co_return relay_end::finished;
  }
  for (;;) {
    const auto left = l.last_activity + opts.idle_timeout - clock::now();
    if (left <= clock::duration::zero()) {
      g.cancel();
      co_return relay_end::idle;
    }
    try {
      co_await eddy::with_timeout(left, wait_for(l.both_done));
      co_return relay_end::finished;
    } catch (const eddy::timeout_error&) {
      // Check again: bytes may have moved while we slept.
    }
  }
}

}  // namespace

eddy::task<relay_end> relay(side client, side upstream, relay_options opts) {
  link l;
  relay_end end = relay_end::failed;
  try {
    end = co_await eddy::with_task_group([&](eddy::task_group& g) {
      // Not a coroutine: it returns run_relay's task, which takes its state as
      // parameters that outlive it (this frame), per STYLE.md.
      return run_relay(g, l, client, upstream, opts);
    });
  } catch (const std::system_error&) {
    // One side reset or refused our writes: the group closed the other direction.
  }
  // A side that already failed may refuse the close; there is nothing more to do.
  try {
    co_await close(client);
  } catch (const std::system_error&) {
  }
  try {
    co_await close(upstream);
  } catch (const std::system_error&) {
  }
  co_return end;
}

}  // namespace tcp_proxy
