// echo_server: a TCP echo server, one task per connection.
//
//   echo_server [--host 127.0.0.1] [--port 7000] [--backend auto|io_uring|epoll|libuv]
//               [--threads 1]
//
// It prints "listening on HOST PORT" on stdout once it accepts (with --port 0 the
// kernel picks the port; scripts read it from that line), and runs until SIGINT or
// SIGTERM, then stops accepting, closes every connection and exits 0.
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

#include <cstdio>
#include <cstring>
#include <eddy/io/tcp.hpp>
#include <eddy/runtime/run.hpp>
#include <eddy/runtime/task_group.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/signal_set.hpp>
#include <exception>
#include <string>
#include <system_error>

#include "common/cli.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char* prog = "echo_server";

constexpr const char* usage =
    "usage: echo_server [options]\n"
    "  --host ADDR        numeric IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
    "  --port PORT        0..65535; 0 lets the kernel pick (default 7000)\n"
    "  --backend NAME     auto, io_uring, epoll or libuv (default auto)\n"
    "  --threads N        loop threads; only 1 for now (default 1)\n"
    "  --help             this text\n"
    "Prints \"listening on HOST PORT\" when ready; SIGINT or SIGTERM stops it (exit 0).\n";

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7000;
  eddy::backend_kind backend = eddy::backend_kind::automatic;
};

options parse(int argc, char** argv) {
  options o;
  sample::arg_reader r(prog, argc, argv);
  while (auto name = r.next()) {
    if (*name == "--help") {
      r.no_value();
      std::fputs(usage, stdout);
      std::exit(0);
    } else if (*name == "--host") {
      o.host = r.value();
    } else if (*name == "--port") {
      o.port = sample::port_value(r);
    } else if (*name == "--backend") {
      o.backend = sample::backend_value(r);
    } else if (*name == "--threads") {
      if (sample::count_value(r, 1, 1024) != 1)
        sample::usage_error(prog,
                            "--threads: only 1 loop thread is supported for now; for more cores "
                            "run one echo_server per core");
    } else {
      sample::usage_error(prog, "unknown option '" + std::string(*name) + "'");
    }
  }
  return o;
}

eddy::task<void> echo(eddy::tcp_stream s) {
  try {
    s.set_nodelay(true);
    for (;;) {
      eddy::recv_buffer chunk = co_await s.receive();
      if (chunk.empty()) break;
      // write_some is a plain awaiter (no coroutine frame, unlike write_all); a
      // loopback send almost always takes the whole chunk in one go.
      while (!chunk.empty()) chunk.consume(co_await s.write_some(chunk.data()));
    }
    s.shutdown_write();
  } catch (const std::system_error&) {
    // The peer reset the connection: nobody is left to echo to.
  }
  co_await s.close();
}

eddy::task<void> accept_loop(eddy::tcp_listener& listener, eddy::task_group& conns) {
  bool backoff = false;  // co_await is not allowed inside a handler
  for (;;) {
    try {
      conns.spawn(echo(co_await listener.accept())).detach();
    } catch (const std::system_error& e) {
      // accept() already absorbs EMFILE and aborted connections; anything else
      // (ENOBUFS, ENOMEM) is transient on a server, so say it and carry on.
      std::fprintf(stderr, "%s: accept: %s\n", prog, e.what());
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
  eddy::signal_set stop{SIGINT, SIGTERM};
  eddy::tcp_listener listener =
      eddy::tcp_listener::bind(sample::bind_address(prog, o.host, o.port));
  const eddy::socket_address bound = listener.local_address();
  std::printf("listening on %s %u\n", bound.host().c_str(), static_cast<unsigned>(bound.port()));
  std::fflush(stdout);

  eddy::task_group conns;
  eddy::join_handle<void> acceptor = eddy::spawn(accept_loop(listener, conns));
  const int sig = co_await stop.wait();
  std::fprintf(stderr, "%s: %s, closing %zu connection(s)\n", prog, sigabbrev_np(sig),
               conns.size());

  acceptor.cancel();
  try {
    co_await acceptor;
  } catch (const eddy::cancelled_error&) {
  }
  co_await listener.close();
  conns.cancel();
  co_await conns.join();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  sample::raise_fd_limit();
  eddy::loop_options lo;
  lo.backend = o.backend;
  try {
    return eddy::run(serve(o), lo);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", prog, e.what());
    return 1;
  }
}
