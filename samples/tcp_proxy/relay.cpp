// The relay of one proxied connection.
//
// eddy::relay moves the bytes (splice through a pipe with --splice, copying
// through the loop's receive buffers otherwise, or through TLS). Two tasks share
// the relay's frame, in one task group:
//  1. the relay itself: a direction that reads EOF half-closes the other side and
//     ends, the other direction keeps going (a client may send its request, shut
//     down its write side, and still read the whole reply); a direction that
//     fails (reset, EPIPE) ends the relay and so the group, and both sockets are
//     closed;
//  2. the idle watch: it reads the relay's progress counters every quarter of
//     the idle timeout and cancels the relay once they have not moved for the
//     whole timeout, so a connection is closed after between 1 and 1.25 idle
//     timeouts, and moving bytes costs the watch nothing;
//  3. the streams live in relay()'s frame and the group is always joined before
//     that frame ends, so nothing outlives the sockets it uses.
#include "tcp_proxy/relay.hpp"

#include <eddy/io/relay.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/task_group.hpp>
#include <eddy/runtime/time.hpp>
#include <system_error>

namespace tcp_proxy {
namespace {

using clock = std::chrono::steady_clock;

eddy::task<void> close(side& s) {
#ifdef EDDY_SAMPLE_TLS
  // close() sends close_notify unless shutdown_write already did, or the stream broke.
  if (s.is_tls()) co_await s.tls.close();
#endif
  co_await s.tcp.close();
}

eddy::task<void> move_bytes(side& client, side& upstream, relay_options opts,
                            eddy::relay_result& moved, eddy::event& done) {
  const eddy::relay_options ro{.splice = opts.splice, .progress = &moved};
#ifdef EDDY_SAMPLE_TLS
  if (client.is_tls() && upstream.is_tls())
    (void)co_await eddy::relay(client.tls, upstream.tls, ro);
  else if (client.is_tls())
    (void)co_await eddy::relay(client.tls, upstream.tcp, ro);
  else if (upstream.is_tls())
    (void)co_await eddy::relay(client.tcp, upstream.tls, ro);
  else
#endif
    (void)co_await eddy::relay(client.tcp, upstream.tcp, ro);
  done.set();
}

eddy::task<void> wait_for(eddy::event& e) {
  co_await e.wait();
}

eddy::task<relay_end> run_relay(eddy::task_group& g, eddy::relay_result& moved, eddy::event& done,
                                side& client, side& upstream, relay_options opts) {
  g.spawn(move_bytes(client, upstream, opts, moved, done)).detach();
  if (opts.idle_timeout.count() == 0) {
    co_await done.wait();
    co_return relay_end::finished;
  }
  const auto step = std::max<clock::duration>(opts.idle_timeout / 4, std::chrono::milliseconds(1));
  std::uint64_t seen = 0;
  auto last_move = clock::now();
  for (;;) {
    try {
      co_await eddy::with_timeout(step, wait_for(done));
      co_return relay_end::finished;
    } catch (const eddy::timeout_error&) {
    }
    const std::uint64_t now_moved = moved.a_to_b + moved.b_to_a;
    const auto now = clock::now();
    if (now_moved != seen) {
      seen = now_moved;
      last_move = now;
    } else if (now - last_move >= opts.idle_timeout) {
      g.cancel();
      co_return relay_end::idle;
    }
  }
}

}  // namespace

eddy::task<relay_end> relay(side client, side upstream, relay_options opts) {
  eddy::relay_result moved;
  eddy::event done;
  relay_end end = relay_end::failed;
  try {
    end = co_await eddy::with_task_group([&](eddy::task_group& g) {
      // Not a coroutine: it returns run_relay's task, which takes its state as
      // parameters that outlive it (this frame), per STYLE.md.
      return run_relay(g, moved, done, client, upstream, opts);
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
