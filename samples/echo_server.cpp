// echo_server: a TCP echo server, one task per connection.
//
//   echo_server [--host 127.0.0.1] [--port 7000] [--backend auto|io_uring|epoll|libuv]
//               [--threads N] [--work-us N] [--recv-limit BYTES] [--discard]
//               [--uring-buffers N] [--uring-buffer-size BYTES] [--send-zerocopy-min BYTES]
//               [--gather N]
//               [--stats N] [--grace S] [--metrics on|off]
//
// --discard reads and drops what arrives instead of echoing it: the server side of
// bench/compare's one-way stream row.
//
// --threads N runs N loops, one per thread (0 = one per core), each with its own
// SO_REUSEPORT listener on the address (samples/common/multi_loop.hpp): the kernel
// spreads connections over the loops and a connection stays on its loop. With
// --threads 1 (the default) it is the single-loop program it always was.
//
// --work-us N spends N microseconds of CPU on every chunk received before echoing it
// (hashing the payload over and over), so that the server, not the client, is the
// bottleneck: what a request handler that computes something costs. Scaling across
// cores is measured with it.
//
// It prints "listening on HOST PORT" on stdout once it accepts (with --port 0 the
// kernel picks the port; scripts read it from that line), and runs until SIGINT or
// SIGTERM; then (eddy::graceful_shutdown) it stops accepting, lets the connections
// finish for up to --grace seconds (their clients close them), cancels the rest and
// exits 0; a second signal cancels at once. With --threads, every loop does the same
// with its own connections. --stats N logs a one-line summary every N seconds;
// SIGUSR2 logs a dump of every task (docs/operability.md shows both).
//
// Each connection reads with receive(): on io_uring one multishot recv fills
// buffers from the loop's provided-buffer ring, so a connection waiting for data
// holds no buffer and a busy one costs one completion per chunk, no re-arming; on
// epoll receive() reads into pooled blocks. A chunk is written back before the next
// one is taken, so at most one chunk per connection is held by us (plus the few
// the receiver may queue, capped per socket): a client that does not read its
// echoes stops the server reading from it instead of growing memory. When the
// client half-closes, the echo finishes and the server half-closes too.
//
// Exit status: 0 after a signal, 1 if the server could not run (address in use,
// backend unavailable), 2 for bad usage.
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <eddy/io/tcp.hpp>
#include <eddy/runtime/run.hpp>
#include <eddy/runtime/task_group.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/graceful_shutdown.hpp>
#include <eddy/sched/signal_set.hpp>
#include <exception>
#include <span>
#include <string>
#include <system_error>

#include "common/cli.hpp"
#include "common/multi_loop.hpp"
#include "common/operator.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char* prog = "echo_server";

constexpr const char* usage =
    "usage: echo_server [options]\n"
    "  --host ADDR        numeric IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
    "  --port PORT        0..65535; 0 lets the kernel pick (default 7000)\n"
    "  --backend NAME     auto, io_uring, epoll or libuv (default auto)\n"
    "  --threads N        loop threads, 0..1024; 0 = one per core; each loop has its own\n"
    "                     SO_REUSEPORT listener (default 1)\n"
    "  --work-us N        spend N microseconds of CPU hashing each chunk before echoing\n"
    "                     it, 0..1000000 (default 0)\n"
    "  --recv-limit BYTES most bytes one receive hands over, 16384..4194304\n"
    "                     (loop_options::recv_limit; default 262144)\n"
    "  --uring-buffers N  io_uring's provided-buffer ring: buffer count, a power of two\n"
    "                     1..32768; 0 picks by kernel (loop_options::uring_buffers)\n"
    "  --uring-buffer-size BYTES  the ring's buffer size, 4096..16777216, a multiple\n"
    "                     of 4096; 0 picks by kernel (loop_options::uring_buffer_size)\n"
    "  --send-zerocopy-min BYTES  io_uring: sends this big go zero-copy (SEND_ZC), 0 or\n"
    "                     4096..1073741824; 0 = never (loop_options::send_zerocopy_min)\n"
    "  --gather N         send up to N received chunks back in one gathered send when\n"
    "                     they queued up meanwhile (try_receive), 1..8 (default 1)\n"
    "  --discard          read and drop instead of echoing (a sink)\n"
    "  --stats N          log a one-line summary every N seconds, 0..86400; 0 = never\n"
    "                     (default 0; with --threads, the loops' sum)\n"
    "  --grace S          on SIGINT/SIGTERM, let connections finish for up to S seconds,\n"
    "                     0..3600, then close them (default 1; one loop only)\n"
    "  --metrics on|off   busy/idle time in the loop's metrics (default on; off is for\n"
    "                     measuring what they cost, bench/operability.py)\n"
    "  -h, --help         this text\n"
    "  --version          the program's and eddy's version\n"
    "Prints \"listening on HOST PORT\" when ready; SIGINT or SIGTERM stops it (exit 0); a\n"
    "second signal closes what is left at once. SIGUSR2 logs a dump of every task.\n";

constexpr std::size_t gather_max = 8;  // --gather's limit

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7000;
  eddy::backend_kind backend = eddy::backend_kind::automatic;
  std::size_t threads = 1;
  unsigned work_us = 0;
  std::size_t recv_limit = 256 * 1024;
  unsigned uring_buffers = 0;
  std::size_t uring_buffer_size = 0;
  std::size_t send_zerocopy_min = 0;
  std::size_t gather = 1;
  bool discard = false;
  std::chrono::milliseconds stats{0};
  std::chrono::milliseconds grace = 1s;  // echo clients rarely close on cue: keep it short
  bool metrics = true;
};

options parse(int argc, char** argv) {
  options o;
  sample::arg_reader r(prog, argc, argv);
  while (auto name = r.next()) {
    if (*name == "--help") {
      r.no_value();
      std::fputs(usage, stdout);
      std::exit(0);
    } else if (*name == "--version") {
      r.no_value();
      sample::print_version(prog);
      std::exit(0);
    } else if (*name == "--stats") {
      o.stats = std::chrono::seconds(sample::count_value(r, 0, 86400));
    } else if (*name == "--grace") {
      o.grace = sample::seconds_value(r, 0, 3600);
    } else if (*name == "--metrics") {
      const std::string_view v = r.value();
      if (v != "on" && v != "off") sample::usage_error(prog, "--metrics: '" + std::string(v) + "' is not on or off");
      o.metrics = v == "on";
    } else if (*name == "--host") {
      o.host = r.value();
    } else if (*name == "--port") {
      o.port = sample::port_value(r);
    } else if (*name == "--backend") {
      o.backend = sample::backend_value(r);
    } else if (*name == "--threads") {
      o.threads = static_cast<std::size_t>(sample::count_value(r, 0, 1024));
    } else if (*name == "--discard") {
      r.no_value();
      o.discard = true;
    } else if (*name == "--recv-limit") {
      o.recv_limit = static_cast<std::size_t>(sample::count_value(r, 16384, 4194304));
    } else if (*name == "--uring-buffers") {
      o.uring_buffers = static_cast<unsigned>(sample::count_value(r, 0, 32768));
      if ((o.uring_buffers & (o.uring_buffers - 1)) != 0)
        sample::usage_error(prog, "--uring-buffers: " + std::to_string(o.uring_buffers) + " is not a power of two");
    } else if (*name == "--uring-buffer-size") {
      o.uring_buffer_size = static_cast<std::size_t>(sample::count_value(r, 0, 16u << 20));
      if (o.uring_buffer_size % 4096 != 0 || (o.uring_buffer_size != 0 && o.uring_buffer_size < 4096))
        sample::usage_error(prog, "--uring-buffer-size: " + std::to_string(o.uring_buffer_size) +
                                      " is not a multiple of 4096 (4096..16777216, or 0)");
    } else if (*name == "--send-zerocopy-min") {
      o.send_zerocopy_min = static_cast<std::size_t>(sample::count_value(r, 0, 1u << 30));
      if (o.send_zerocopy_min != 0 && o.send_zerocopy_min < 4096)
        sample::usage_error(prog, "--send-zerocopy-min: " + std::to_string(o.send_zerocopy_min) +
                                      " is below 4096 (0 = never, or 4096..1073741824)");
    } else if (*name == "--gather") {
      o.gather = static_cast<std::size_t>(sample::count_value(r, 1, gather_max));
    } else if (*name == "--work-us") {
      o.work_us = static_cast<unsigned>(sample::count_value(r, 0, 1'000'000));
    } else {
      sample::usage_error(prog, "unknown option '" + std::string(*name) + "'");
    }
  }
  return o;
}

// --work-us: hash the payload (FNV-1a) until `us` microseconds have passed. The
// result goes to a volatile so the compiler cannot drop the work.
volatile std::uint64_t work_sink = 0;

void burn(std::span<const std::byte> data, unsigned us) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  std::uint64_t h = 1469598103934665603ull;
  do {
    for (std::byte b : data) h = (h ^ static_cast<std::uint64_t>(b)) * 1099511628211ull;
    h ^= 0x9e3779b97f4a7c15ull;
  } while (std::chrono::steady_clock::now() < until);
  work_sink = work_sink + h;
}

// --gather N: chunks that queued up while a send waited go back in one gathered
// send (try_receive), up to N.

eddy::task<void> send_gathered(const eddy::tcp_stream& s, eddy::recv_buffer* chunks, std::size_t n) {
  std::span<const std::byte> parts[gather_max];
  for (std::size_t i = 0; i < n; ++i) parts[i] = chunks[i].data();
  co_await s.write_all(std::span<const std::span<const std::byte>>(parts, n));
}

eddy::task<void> echo_gathered(eddy::tcp_stream& s, std::size_t gather) {
  eddy::recv_buffer chunks[gather_max];
  for (;;) {
    chunks[0] = co_await s.receive();
    if (chunks[0].empty()) co_return;
    std::size_t n = 1;
    while (n < gather && !(chunks[n] = s.try_receive()).empty()) ++n;
    co_await send_gathered(s, chunks, n);
    for (std::size_t i = 0; i < n; ++i) chunks[i].reset();
  }
}

eddy::task<void> echo(eddy::tcp_stream s, unsigned work_us, bool discard, std::size_t gather) {
  try {
    s.set_nodelay(true);
    if (gather > 1 && work_us == 0 && !discard) co_await echo_gathered(s, gather);
    for (;;) {
      eddy::recv_buffer chunk = co_await s.receive();
      if (chunk.empty()) break;
      if (work_us != 0) burn(chunk.data(), work_us);
      if (discard) continue;
      // write_some is a plain awaiter (no coroutine frame, unlike write_all); a
      // loopback send almost always takes the whole chunk in one go.
      while (!chunk.empty()) chunk.consume(co_await s.write_some(chunk.data()));
    }
    s.shutdown_write();
  } catch (const std::system_error& e) {
    // The peer reset the connection: nobody is left to echo to. Anything else is
    // the server's problem: say it.
    const int code = e.code().value();
    if (code != ECONNRESET && code != EPIPE && code != ETIMEDOUT)
      sample::logf(prog, "connection: %s", e.what());
  }
  co_await s.close();
}

eddy::task<void> accept_loop(eddy::tcp_listener& listener, eddy::task_group& conns, unsigned work_us,
                             bool discard, std::size_t gather, std::uint64_t* accepted) {
  bool backoff = false;  // co_await is not allowed inside a handler
  for (;;) {
    try {
      conns.spawn(echo(co_await listener.accept(), work_us, discard, gather)).detach();
      ++*accepted;
    } catch (const std::system_error& e) {
      // accept() already absorbs EMFILE and aborted connections; anything else
      // (ENOBUFS, ENOMEM) is transient on a server, so say it and carry on.
      sample::logf(prog, "accept: %s", e.what());
      backoff = true;
    }
    if (backoff) {
      backoff = false;
      co_await eddy::sleep_for(10ms);
    }
  }
}

eddy::task<int> serve(options o) {
  // Before anything could start a thread: signals must stay blocked in all of them.
  eddy::graceful_shutdown shutdown;  // SIGINT, SIGTERM
  eddy::signal_set usr2{SIGUSR2};
  eddy::tcp_listener listener =
      eddy::tcp_listener::bind(sample::bind_address(prog, o.host, o.port));
  const eddy::socket_address bound = listener.local_address();
  std::printf("listening on %s %u\n", bound.host().c_str(), static_cast<unsigned>(bound.port()));
  std::fflush(stdout);

  eddy::task_group& conns = shutdown.connections();
  std::uint64_t accepted = 0;
  eddy::join_handle<void> acceptor = eddy::spawn(accept_loop(listener, conns, o.work_us, o.discard, o.gather, &accepted));
  eddy::join_handle<void> dumper = eddy::spawn(sample::dump_on_signal(prog, usr2));
  eddy::join_handle<void> stats;
  if (o.stats.count() != 0) {
    stats = eddy::spawn(sample::print_stats(prog, o.stats, [&conns, &accepted] {
      return "conns " + std::to_string(conns.size()) + " accepted " + std::to_string(accepted);
    }));
  }
  const int sig = co_await shutdown.wait();
  sample::logf(prog, "%s, stopped accepting; %zu connection(s) open, up to %.1f s to finish",
               sig != 0 ? sigabbrev_np(sig) : "stop", conns.size(), static_cast<double>(o.grace.count()) / 1000.0);
  acceptor.cancel();
  try {
    co_await acceptor;
  } catch (const eddy::cancelled_error&) {
  }
  co_await listener.close();
  const eddy::shutdown_result r = co_await shutdown.drain(o.grace);
  sample::logf(prog, "%zu connection(s) finished, %zu closed%s", r.finished, r.cancelled,
               r.second_signal ? " at a second signal" : r.cancelled != 0 ? " at the deadline" : "");
  for (eddy::join_handle<void>* h : {&dumper, &stats}) {
    if (!h->valid()) continue;
    h->cancel();
    try {
      co_await *h;
    } catch (const eddy::cancelled_error&) {
    }
  }
  co_return 0;
}

// --threads N: one loop's share. Runs until cancelled (the first signal), then stops
// accepting and lets its connections finish for --grace, as serve() does; a second
// cancellation (signal) closes them now.
eddy::task<std::uint64_t> serve_loop(std::size_t index, eddy::tcp_listener& listener, const options& o) {
  eddy::graceful_shutdown shutdown({});  // loop 0 reads the signals
  std::uint64_t accepted = 0;
  eddy::join_handle<void> acceptor =
      eddy::spawn(accept_loop(listener, shutdown.connections(), o.work_us, o.discard, o.gather, &accepted));
  try {
    co_await acceptor;  // runs until cancelled
  } catch (const eddy::cancelled_error&) {
  }
  co_await sample::drain_loop(prog, index, acceptor, listener, shutdown, o.grace, "connection");
  co_return accepted;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  sample::raise_fd_limit();
  eddy::loop_options lo;
  lo.backend = o.backend;
  lo.recv_limit = o.recv_limit;
  lo.uring_buffers = o.uring_buffers;
  lo.uring_buffer_size = o.uring_buffer_size;
  lo.send_zerocopy_min = o.send_zerocopy_min;
  lo.metrics = o.metrics;
  if (o.threads != 1)
    return sample::run_on_loops<options>(prog, o.threads, lo, sample::bind_address(prog, o.host, o.port),
                                         &serve_loop, o, o.stats);
  try {
    return eddy::run(serve(o), lo);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", prog, e.what());
    return 1;
  }
}
