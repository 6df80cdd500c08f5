// http_server: an HTTP/1.1 server on eddy: GET /plaintext answers the 13 bytes
// "Hello, World!" (for benchmarks), every other GET or HEAD is a file under
// --root (Content-Type by extension, Last-Modified / If-Modified-Since, one
// Range, small files read with eddy::fs and sent with their headers, large ones
// with eddy::send_file). Keep-alive and pipelining; limits and timeouts in
// samples/http_server/server.hpp. docs/http_server.md has the figures.
//
//   http_server --listen HOST:PORT [--root DIR] [--threads N] [--backend NAME]
//               [--header-timeout S] [--idle-timeout S] [--max-header-bytes N]
//               [--max-body-bytes N] [--max-connections N] [--file-cache S] [--access-log]
//               [--grace S] [--stats N]
//
// Prints "listening on HOST PORT" once it accepts; SIGINT or SIGTERM stops it
// gracefully (eddy::graceful_shutdown, through sample::drain_loop: requests in
// progress are answered, idle connections closed, the rest get --grace), a second
// signal at once; SIGUSR2 dumps every loop's tasks (exit 0). Exit status 1 if it could not run, 2 for bad usage.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <eddy/eddy.hpp>

#include "common/cli.hpp"
#include "common/multi_loop.hpp"
#include "http_server/server.hpp"

namespace {

constexpr const char* prog = "http_server";

constexpr const char* usage =
    "usage: http_server --listen HOST:PORT [options]\n"
    "  --listen HOST:PORT     numeric address ([::1]:8080 for IPv6); port 0: the kernel picks\n"
    "  --root DIR             serve the files under DIR (default: only /plaintext)\n"
    "  --threads N            loops, one per thread, 0..1024; 0 = one per core (default 1)\n"
    "  --backend NAME         auto, io_uring, epoll or libuv (default auto)\n"
    "  --header-timeout S     a request's headers must arrive within S seconds (default 10)\n"
    "  --idle-timeout S       close keep-alive connections idle for S seconds (default 30)\n"
    "  --max-header-bytes N   request line + headers, 256..1048576 (default 8192): else 431\n"
    "  --max-body-bytes N     request body, 0..1073741824 (default 1048576): else 413\n"
    "  --max-connections N    per loop, 1..1000000 (default 100000)\n"
    "  --file-cache S         keep open files and their stat for S seconds, 0..60 (default 1;\n"
    "                         0: open, stat and close per request)\n"
    "  --sendfile-min N       bodies of N bytes or more go by sendfile, smaller ones are read\n"
    "                         and sent with their headers, 0..1073741824 (default 65537)\n"
    "  --access-log           print each request on stdout\n"
    "  --grace S              on SIGINT/SIGTERM: stop accepting, answer requests in progress\n"
    "                         (Connection: close), close idle connections, and wait up to S\n"
    "                         seconds, 0..3600, for the rest (default 10); a second signal\n"
    "                         closes them at once\n"
    "  --stats N              log the loops' metrics every N seconds, 0..86400 (0: off)\n"
    "  --help                 this text\n";

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  eddy::backend_kind backend = eddy::backend_kind::automatic;
  std::size_t threads = 1;
  http::server_options server;
  std::chrono::milliseconds grace{10'000};
  std::chrono::milliseconds stats{0};
};

options parse(int argc, char** argv) {
  options o;
  sample::arg_reader r(prog, argc, argv);
  while (auto name = r.next()) {
    if (*name == "--help") {
      r.no_value();
      std::fputs(usage, stdout);
      std::exit(0);
    } else if (*name == "--listen") {
      eddy::host_port hp = sample::host_port_value(r);
      o.host = std::move(hp.host);
      o.port = hp.port;
    } else if (*name == "--root") {
      o.server.root = r.value();
    } else if (*name == "--threads") {
      o.threads = static_cast<std::size_t>(sample::count_value(r, 0, 1024));
    } else if (*name == "--backend") {
      o.backend = sample::backend_value(r);
    } else if (*name == "--header-timeout") {
      o.server.header_timeout = sample::seconds_value(r, 0.01, 3600);
    } else if (*name == "--idle-timeout") {
      o.server.idle_timeout = sample::seconds_value(r, 0.01, 86400);
    } else if (*name == "--max-header-bytes") {
      o.server.lim.max_header_bytes = static_cast<std::size_t>(sample::count_value(r, 256, 1 << 20));
    } else if (*name == "--max-body-bytes") {
      o.server.lim.max_body_bytes = static_cast<std::size_t>(sample::count_value(r, 0, 1 << 30));
    } else if (*name == "--max-connections") {
      o.server.max_connections = static_cast<std::size_t>(sample::count_value(r, 1, 1'000'000));
    } else if (*name == "--file-cache") {
      o.server.file_cache_ttl = sample::seconds_value(r, 0, 60);
    } else if (*name == "--sendfile-min") {
      o.server.sendfile_min = static_cast<std::uint64_t>(sample::count_value(r, 0, 1 << 30));
    } else if (*name == "--grace") {
      o.grace = sample::seconds_value(r, 0, 3600);
    } else if (*name == "--stats") {
      o.stats = std::chrono::seconds(sample::count_value(r, 0, 86400));
    } else if (*name == "--access-log") {
      r.no_value();
      o.server.access_log = true;
    } else {
      sample::usage_error(prog, "unknown option '" + std::string(*name) + "'");
    }
  }
  return o;
}

eddy::task<void> accept_loop(eddy::tcp_listener& listener, eddy::task_group& conns,
                             http::server& srv, std::uint64_t* accepted) {
  for (;;) {
    bool backoff = false;
    try {
      conns.spawn(srv.serve(co_await listener.accept())).detach();
      ++*accepted;
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "%s: accept: %s\n", prog, e.what());
      backoff = true;
    }
    if (backoff) co_await eddy::sleep_for(std::chrono::milliseconds(10));
  }
}

// One loop's share: accept and serve until cancelled (the first signal); then stop
// accepting (sample::drain_loop), answer the requests in progress with
// `Connection: close`, end idle keep-alive connections, and give the rest up to
// --grace; a second signal closes what is left.
eddy::task<std::uint64_t> serve_loop(std::size_t index, eddy::tcp_listener& listener, const options& o) {
  http::server srv(o.server);
  eddy::graceful_shutdown shutdown({});  // loop 0 reads the signals
  std::uint64_t accepted = 0;
  auto sweeper = eddy::spawn(srv.sweep());
  eddy::join_handle<void> acceptor = eddy::spawn(accept_loop(listener, shutdown.connections(), srv, &accepted));
  try {
    co_await acceptor;  // runs until cancelled
  } catch (const eddy::cancelled_error&) {
  }
  srv.drain();
  co_await sample::drain_loop(prog, index, acceptor, listener, shutdown, o.grace, "connection");
  sweeper.cancel();
  try {
    co_await sweeper;
  } catch (const eddy::cancelled_error&) {
  }
  co_return accepted;
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  if (!o.server.root.empty()) {
    o.server.root_fd = ::open(o.server.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (o.server.root_fd < 0) {
      std::perror(("http_server: --root " + o.server.root).c_str());
      return 1;
    }
  }
  sample::raise_fd_limit();
  eddy::loop_options lo;
  lo.backend = o.backend;
  return sample::run_on_loops<options>(prog, o.threads, lo,
                                       sample::bind_address(prog, o.host, o.port), &serve_loop, o, o.stats);
}
