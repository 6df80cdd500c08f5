// tcp_proxy: a TCP relay from a listening address to one upstream.
//
//   tcp_proxy --listen HOST:PORT --upstream HOST:PORT [--backend auto|io_uring|epoll|libuv]
//             [--idle-timeout S] [--connect-timeout S] [--max-conns N] [--splice]
//             [--grace S] [--threads N] [--stats N]
//             [--tls-cert FILE --tls-key FILE] [--tls-handshake-timeout S] [--tls-tickets N]
//             [--upstream-tls [--upstream-ca FILE] [--upstream-sni NAME]]
//
// TLS (built with -Dtls): --tls-cert/--tls-key terminate TLS on the listening side
// (clients speak TLS to the proxy, the upstream gets plain bytes); --upstream-tls
// originates it (the proxy is a TLS client of the upstream, verifying its
// certificate against the system's CAs or --upstream-ca, and the name
// --upstream-sni or else the upstream's host); both together re-encrypt. A client
// whose handshake fails (plain text, a bad hello, a stall past the handshake
// timeout) gets one line on stderr and is closed; nothing is connected upstream
// for it.
//
// --threads N runs N loops, one per thread (0 = one per core), each with its own
// SO_REUSEPORT listener on --listen (samples/common/multi_loop.hpp); a relay and its
// upstream connection stay on the loop that accepted the client. --max-conns is then
// shared out: each loop admits its even share (rounded up).
//
// Each accepted connection gets its own upstream connection and a relay
// (tcp_proxy/relay.hpp, on eddy::relay): both directions moved independently, each half-close
// forwarded on its own, at most one chunk per direction in flight, an idle timeout
// that closes both sides.
//
// Over --max-conns the proxy accepts the connection and closes it at once (the
// client sees EOF before any byte) instead of leaving it in the listen queue: the
// client learns immediately, the kernel queue does not fill with clients that will
// time out, and a refused connection costs no memory after its close.
//
// SIGTERM or SIGINT: stop accepting, close the listener, let the relays finish for
// up to --grace seconds, then close whatever is left; a second signal closes it at
// once (eddy::graceful_shutdown; with --threads, on every loop). Exit 0. Exit 1 if the proxy could not run (address
// in use), 2 for bad usage. --stats N logs a one-line summary every N seconds;
// SIGUSR2 logs a dump of every task (docs/operability.md).
//
// It prints "listening on HOST PORT" on stdout when ready (--listen HOST:0 lets the
// kernel pick the port).
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <eddy/io/tcp.hpp>
#include <eddy/runtime/run.hpp>
#include <eddy/runtime/task_group.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/runtime/when.hpp>
#include <eddy/sched/graceful_shutdown.hpp>
#include <eddy/sched/signal_set.hpp>
#include <eddy/sched/tcp_connect.hpp>
#include <exception>
#include <optional>
#include <string>
#include <system_error>

#ifdef EDDY_SAMPLE_TLS
#include <eddy/io/tls.hpp>
#endif

#include "common/cli.hpp"
#include "common/multi_loop.hpp"
#include "common/operator.hpp"
#include "tcp_proxy/relay.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char* prog = "tcp_proxy";

constexpr const char* usage =
    "usage: tcp_proxy --listen HOST:PORT --upstream HOST:PORT [options]\n"
    "  --listen HOST:PORT      numeric address to accept on ([::1]:PORT for IPv6); port 0\n"
    "                          lets the kernel pick\n"
    "  --upstream HOST:PORT    where to relay each connection (a name is resolved per\n"
    "                          connection)\n"
    "  --backend NAME          auto, io_uring, epoll or libuv (default auto)\n"
    "  --idle-timeout S        close both sides after S seconds with no byte either way;\n"
    "                          0 = never (default 300)\n"
    "  --connect-timeout S     give up on the upstream after S seconds (default 5)\n"
    "  --max-conns N           relays at once, 1..1000000; more are accepted and closed\n"
    "                          at once (default 1000)\n"
    "  --splice                move bytes with splice(2) through a pipe (zero-copy)\n"
    "  --grace S               on SIGTERM/SIGINT, let relays finish for S seconds\n"
    "                          (default 5)\n"
    "  --threads N             loop threads, 0..1024; 0 = one per core; each loop has its\n"
    "                          own SO_REUSEPORT listener (default 1)\n"
    "  --tls-cert FILE         terminate TLS: the certificate chain (PEM) clients see\n"
    "  --tls-key FILE          ... and its private key (PEM); both or neither\n"
    "  --tls-handshake-timeout S  drop a client whose TLS handshake takes longer\n"
    "                          (default 10)\n"
    "  --tls-tickets N         TLS 1.3 session tickets sent after each full handshake,\n"
    "                          0..16; 0 turns resumption off (default 1, see docs/tls.md)\n"
    "  --upstream-tls          speak TLS to the upstream (verifying its certificate)\n"
    "  --upstream-ca FILE      CA certificates (PEM) for the upstream; default: the\n"
    "                          system's store\n"
    "  --upstream-sni NAME     the name sent to and verified on the upstream; default:\n"
    "                          the upstream's host\n"
    "  --stats N               log a one-line summary every N seconds, 0..86400; 0 = never\n"
    "                          (default 0; with --threads, the loops' sum)\n"
    "  -h, --help              this text\n"
    "  --version               the program's and eddy's version\n"
    "Prints \"listening on HOST PORT\" when ready. SIGUSR2 logs a dump of every task.\n";

struct options {
  eddy::socket_address listen;
  std::string upstream_host;
  std::uint16_t upstream_port = 0;
  eddy::backend_kind backend = eddy::backend_kind::automatic;
  std::chrono::milliseconds idle_timeout = 300s;
  std::chrono::milliseconds connect_timeout = 5s;
  std::size_t max_conns = 1000;
  bool splice = false;
  std::chrono::milliseconds grace = 5s;
  std::size_t threads = 1;
  std::string tls_cert;
  std::string tls_key;
  std::chrono::milliseconds tls_handshake_timeout = 10s;
  std::optional<unsigned> tls_tickets;  // unset: the library's default
  bool upstream_tls = false;
  std::string upstream_ca;
  std::string upstream_sni;
  std::chrono::milliseconds stats{0};
};

std::string file_value(sample::arg_reader& r) {
  std::string v(r.value());
  if (v.empty() || v.size() > 4096) sample::usage_error(prog, std::string(r.name()) + ": a file path of 1..4096 bytes");
  return v;
}

options parse(int argc, char** argv) {
  options o;
  bool have_listen = false;
  bool have_upstream = false;
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
    } else if (*name == "--listen") {
      const eddy::host_port hp = sample::host_port_value(r);
      o.listen = sample::bind_address(prog, hp.host, hp.port);
      have_listen = true;
    } else if (*name == "--upstream") {
      const eddy::host_port hp = sample::host_port_value(r);
      if (hp.port == 0) sample::usage_error(prog, "--upstream: port 0 is not a destination");
      o.upstream_host = hp.host;
      o.upstream_port = hp.port;
      have_upstream = true;
    } else if (*name == "--backend") {
      o.backend = sample::backend_value(r);
    } else if (*name == "--idle-timeout") {
      o.idle_timeout = sample::seconds_value(r, 0, 1e6);
    } else if (*name == "--connect-timeout") {
      o.connect_timeout = sample::seconds_value(r, 0.001, 3600);
    } else if (*name == "--max-conns") {
      o.max_conns = static_cast<std::size_t>(sample::count_value(r, 1, 1'000'000));
    } else if (*name == "--splice") {
      r.no_value();
      o.splice = true;
    } else if (*name == "--threads") {
      o.threads = static_cast<std::size_t>(sample::count_value(r, 0, 1024));
    } else if (*name == "--grace") {
      o.grace = sample::seconds_value(r, 0, 3600);
    } else if (*name == "--tls-cert") {
      o.tls_cert = file_value(r);
    } else if (*name == "--tls-key") {
      o.tls_key = file_value(r);
    } else if (*name == "--tls-handshake-timeout") {
      o.tls_handshake_timeout = sample::seconds_value(r, 0.001, 3600);
    } else if (*name == "--tls-tickets") {
      o.tls_tickets = static_cast<unsigned>(sample::count_value(r, 0, 16));
    } else if (*name == "--upstream-tls") {
      r.no_value();
      o.upstream_tls = true;
    } else if (*name == "--upstream-ca") {
      o.upstream_ca = file_value(r);
    } else if (*name == "--upstream-sni") {
      o.upstream_sni = std::string(r.value());
      if (o.upstream_sni.empty() || o.upstream_sni.size() > 253)
        sample::usage_error(prog, "--upstream-sni: a name of 1..253 bytes");
    } else {
      sample::usage_error(prog, "unknown option '" + std::string(*name) + "'");
    }
  }
  if (!have_listen) sample::usage_error(prog, "--listen HOST:PORT is required");
  if (!have_upstream) sample::usage_error(prog, "--upstream HOST:PORT is required");
  if (o.tls_cert.empty() != o.tls_key.empty())
    sample::usage_error(prog, "--tls-cert and --tls-key go together");
  if (o.tls_tickets && o.tls_cert.empty()) sample::usage_error(prog, "--tls-tickets needs --tls-cert");
  if ((!o.upstream_ca.empty() || !o.upstream_sni.empty()) && !o.upstream_tls)
    sample::usage_error(prog, "--upstream-ca and --upstream-sni need --upstream-tls");
  if (o.splice && (!o.tls_cert.empty() || o.upstream_tls))
    sample::usage_error(prog, "--splice moves bytes the proxy never sees: not with TLS");
#ifndef EDDY_SAMPLE_TLS
  if (!o.tls_cert.empty() || o.upstream_tls)
    sample::usage_error(prog, "this tcp_proxy was built without TLS (-Dtls=disabled or no libssl-dev)");
#endif
  return o;
}

struct proxy {
  options opts;
  // A numeric upstream is parsed once; a name is resolved per connection, so a
  // DNS change is seen without a restart.
  std::optional<eddy::socket_address> upstream_addr;
  std::size_t live = 0;
  std::uint64_t refused = 0;
  std::uint64_t accepted = 0;
#ifdef EDDY_SAMPLE_TLS
  std::optional<eddy::tls_context> tls_server{};    // --tls-cert
  std::optional<eddy::tls_context> tls_upstream{};  // --upstream-tls
#endif
};

#ifdef EDDY_SAMPLE_TLS
// Contexts are made once, before any connection, and shared by every loop.
void make_tls_contexts(proxy& p) {
  if (!p.opts.tls_cert.empty()) {
    eddy::tls_server_options so{.cert_file = p.opts.tls_cert, .key_file = p.opts.tls_key};
    if (p.opts.tls_tickets) so.tickets = *p.opts.tls_tickets;
    p.tls_server = eddy::tls_context::server(so);
  }
  if (p.opts.upstream_tls) {
    eddy::tls_client_options co;
    co.ca_file = p.opts.upstream_ca;
    p.tls_upstream = eddy::tls_context::client(co);
  }
}
#endif

eddy::task<eddy::tcp_stream> connect_upstream(const proxy& p) {
  eddy::tcp_connect_options co;
  co.timeout = p.opts.connect_timeout;
  if (p.upstream_addr) co_return co_await eddy::tcp_stream::connect(*p.upstream_addr, co);
  co_return co_await eddy::tcp_connect(p.opts.upstream_host, p.opts.upstream_port, co);
}

eddy::task<void> serve_connection(proxy& p, eddy::tcp_stream client) {
  struct count_down {
    proxy& p;
    ~count_down() { --p.live; }
  } counted{p};
  try {
    // Before the TLS handshake: its flights and the tickets after it are small
    // writes that Nagle would hold for the client's delayed ACK (40 ms each).
    client.set_nodelay(true);
  } catch (const std::system_error&) {
    co_return;  // the client is already gone
  }
#ifdef EDDY_SAMPLE_TLS
  eddy::tls_stream tls_client;
  if (p.tls_server) {
    // The handshake first: a client that fails it costs no upstream connection.
    try {
      tls_client = co_await eddy::tls_stream::accept(std::move(client), *p.tls_server,
                                                     {.handshake_timeout = p.opts.tls_handshake_timeout});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", prog, e.what());
      co_return;
    }
  }
#endif
  eddy::tcp_stream upstream;
  try {
    upstream = co_await connect_upstream(p);
  } catch (const std::exception& e) {
    // Refused, unreachable, timed out or unresolvable: the client gets EOF.
    std::fprintf(stderr, "%s: upstream %s:%u: %s\n", prog, p.opts.upstream_host.c_str(),
                 static_cast<unsigned>(p.opts.upstream_port), e.what());
    co_return;
  }
  tcp_proxy::side down{std::move(client)};
#ifdef EDDY_SAMPLE_TLS
  down.tls = std::move(tls_client);
#endif
  tcp_proxy::side up{std::move(upstream)};
#ifdef EDDY_SAMPLE_TLS
  if (p.tls_upstream) {
    try {
      const std::string name = p.opts.upstream_sni.empty() ? p.opts.upstream_host : p.opts.upstream_sni;
      up.tls = co_await eddy::tls_stream::connect(std::move(up.tcp), *p.tls_upstream, name);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: upstream TLS: %s\n", prog, e.what());
      co_return;
    }
  }
#endif
  tcp_proxy::relay_options ro;
  ro.idle_timeout = p.opts.idle_timeout;
  ro.splice = p.opts.splice;
  co_await tcp_proxy::relay(std::move(down), std::move(up), ro);
}

eddy::task<void> accept_loop(proxy& p, eddy::tcp_listener& listener, eddy::task_group& conns) {
  bool backoff = false;  // co_await is not allowed inside a handler
  for (;;) {
    try {
      eddy::tcp_stream s = co_await listener.accept();
      ++p.accepted;
      if (p.live >= p.opts.max_conns) {
        ++p.refused;
        co_await s.close();
        continue;
      }
      ++p.live;
      conns.spawn(serve_connection(p, std::move(s))).detach();
    } catch (const std::system_error& e) {
      // accept() absorbs EMFILE and aborted connections; what is left (ENOBUFS,
      // ENOMEM, a refused close) is transient for a server.
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
  // Before anything could start a thread (name resolution does): signals must stay
  // blocked in all of them.
  eddy::graceful_shutdown shutdown;  // SIGINT, SIGTERM
  eddy::signal_set usr2{SIGUSR2};
  proxy p{o, std::nullopt};
  try {
    p.upstream_addr = eddy::socket_address::ip(o.upstream_host, o.upstream_port);
  } catch (const eddy::address_error&) {
    // A name: resolved per connection.
  }
#ifdef EDDY_SAMPLE_TLS
  make_tls_contexts(p);
#endif
  eddy::tcp_listener listener = eddy::tcp_listener::bind(o.listen);
  const eddy::socket_address bound = listener.local_address();
  std::printf("listening on %s %u\n", bound.host().c_str(), static_cast<unsigned>(bound.port()));
  std::fflush(stdout);

  eddy::task_group& conns = shutdown.connections();
  eddy::join_handle<void> acceptor = eddy::spawn(accept_loop(p, listener, conns));
  eddy::join_handle<void> dumper = eddy::spawn(sample::dump_on_signal(prog, usr2));
  eddy::join_handle<void> stats;
  if (o.stats.count() != 0) {
    stats = eddy::spawn(sample::print_stats(prog, o.stats, [&p] {
      return "relays " + std::to_string(p.live) + " accepted " + std::to_string(p.accepted) + " refused " +
             std::to_string(p.refused);
    }));
  }
  const int sig = co_await shutdown.wait();
  acceptor.cancel();
  try {
    co_await acceptor;
  } catch (const eddy::cancelled_error&) {
  }
  co_await listener.close();
  sample::logf(prog, "%s, stopped accepting; %zu relay(s) open, %llu refused so far", sig != 0 ? sigabbrev_np(sig) : "stop",
               p.live, static_cast<unsigned long long>(p.refused));
  // Every relay done, or the grace period over (the rest are closed), or a
  // second signal (closes them at once): none is left either way.
  const eddy::shutdown_result r = co_await shutdown.drain(o.grace);
  if (r.cancelled != 0)
    sample::logf(prog, "%s, closed the remaining %zu relay(s)",
                 r.second_signal ? "second signal" : "grace period over", r.cancelled);
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

std::optional<eddy::socket_address> numeric_upstream(const options& o) {
  try {
    return eddy::socket_address::ip(o.upstream_host, o.upstream_port);
  } catch (const eddy::address_error&) {
    return std::nullopt;  // a name: resolved per connection
  }
}

// --threads N: one loop's share. The first cancellation (the first signal) stops
// accepting and lets the relays finish for --grace; a second closes them now.
eddy::task<std::uint64_t> serve_loop(std::size_t index, eddy::tcp_listener& listener, const options& o) {
  proxy p{o, numeric_upstream(o)};
#ifdef EDDY_SAMPLE_TLS
  make_tls_contexts(p);  // per loop: each loop's connections share its context
#endif
  const std::size_t loops = o.threads == 0 ? eddy::loop_group::default_size() : o.threads;
  p.opts.max_conns = (o.max_conns + loops - 1) / loops;
  eddy::graceful_shutdown shutdown({});  // loop 0 reads the signals
  eddy::join_handle<void> acceptor = eddy::spawn(accept_loop(p, listener, shutdown.connections()));
  try {
    co_await acceptor;  // runs until cancelled
  } catch (const eddy::cancelled_error&) {
  }
  co_await sample::drain_loop(prog, index, acceptor, listener, shutdown, o.grace, "relay");
  co_return p.accepted;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  // splice(2) into a socket the peer has reset raises SIGPIPE (it has no
  // MSG_NOSIGNAL); eddy's own sends never do.
  ::signal(SIGPIPE, SIG_IGN);
  sample::raise_fd_limit();
  eddy::loop_options lo;
  lo.backend = o.backend;
  if (o.threads != 1) return sample::run_on_loops<options>(prog, o.threads, lo, o.listen, &serve_loop, o, o.stats);
  try {
    return eddy::run(serve(o), lo);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", prog, e.what());
    return 1;
  }
}
