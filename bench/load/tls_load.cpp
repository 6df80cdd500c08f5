// tls_load: a neutral TLS load generator (plain epoll and OpenSSL, no eddy), the
// TLS counterpart of echo_load for bench/tls_compare.
//
//   tls_load --port P [--host H] [--mode echo|handshake|bulk] [--conns N] [--size B]
//            [--secs S] [--warmup S]
//
//   echo       N connections, closed loop: write B bytes, read B back, repeat
//              (requests/s; the handshakes happen before the measured window)
//   handshake  N connections at a time, each: connect, full handshake (no
//              resumption), write B, read B back, close_notify, close; then a new
//              one (handshakes/s)
//   bulk       as echo, with B = 1 MiB by default (MiB/s each way)
//
// The server's certificate is not verified (the load should cost the same against
// every server). Prints one line of JSON: {"mode", "requests", "secs", "per_sec",
// "mib_per_sec", "errors", "tickets_per_handshake"}. Exit 1 if nothing completed.
//
// It is built to cost as little per request as a TLS client can, so that on a small
// machine the server, not the client, sets the pace (bench/tls_compare runs both on
// one core beside the echo server): OpenSSL reads ahead (one read() takes every
// record that has arrived, not a 5-byte header and then the body: half the reads),
// epoll is level-triggered with EPOLLIN only (EPOLLOUT only while connecting or when
// a write would block), and after a request is written the connection waits for
// epoll instead of trying a read that can only say EAGAIN. In echo mode a request
// is one write(), one read() and a share of one epoll_wait(), where it was five
// system calls before (write, read to EAGAIN, epoll_wait, read header, read body).
// The work asked of the server is unchanged: the same records, the same sizes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string mode = "echo";
  int conns = 100;
  std::size_t size = 0;
  double secs = 5;
  double warmup = 1;
};

enum class phase { connecting, handshaking, writing, reading };

struct conn {
  int fd = -1;
  SSL* ssl = nullptr;
  phase ph = phase::connecting;
  std::size_t done = 0;     // bytes written or read in this phase
  std::uint32_t events = 0;  // what epoll watches for now
};

struct load {
  options o;
  SSL_CTX* ctx = nullptr;
  int ep = -1;
  sockaddr_in addr{};
  std::vector<char> out, in;
  bool measuring = false;
  long long requests = 0;
  long long errors = 0;
  long long handshakes = 0;  // completed, over the whole run
};

// Session tickets received over the whole run: the JSON reports tickets per
// handshake, so the tables can say what each server sends (each costs both sides
// a session copy and its encryption). Counted, never kept or offered.
long long g_tickets = 0;
int count_ticket(SSL*, SSL_SESSION*) {
  ++g_tickets;
  return 0;  // not kept: OpenSSL frees it
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "tls_load: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void close_conn(load&, conn& c, bool clean) {
  if (c.ssl != nullptr) {
    if (clean) SSL_shutdown(c.ssl);  // our close_notify; the answer is not waited for
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  if (c.fd >= 0) {
    ::close(c.fd);  // leaves the epoll set too: the descriptor is never duplicated
    c.fd = -1;
  }
}

// Level-triggered interest: EPOLLIN, or EPOLLOUT while a connect or a write waits
// for room. Changed only when it differs (an epoll_ctl per change, none per request).
void watch(load& L, conn& c, std::uint32_t events) {
  if (c.events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &c;
  if (::epoll_ctl(L.ep, EPOLL_CTL_MOD, c.fd, &ev) != 0) die("epoll_ctl");
  c.events = events;
}

// After SSL_ERROR_WANT_*: watch for what OpenSSL waits for. False on an error.
bool wait_for(load& L, conn& c, int r) {
  const int e = SSL_get_error(c.ssl, r);
  if (e == SSL_ERROR_WANT_READ) {
    watch(L, c, EPOLLIN);
    return true;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    watch(L, c, EPOLLOUT);
    return true;
  }
  return false;
}

void open_conn(load& L, conn& c) {
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) die("socket");
  int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(c.fd, reinterpret_cast<sockaddr*>(&L.addr), sizeof L.addr) != 0 && errno != EINPROGRESS)
    die("connect");
  c.ssl = SSL_new(L.ctx);
  SSL_set_fd(c.ssl, c.fd);
  SSL_set_connect_state(c.ssl);
  c.ph = phase::connecting;
  c.done = 0;
  epoll_event ev{};
  ev.events = EPOLLOUT;  // the connect's end
  ev.data.ptr = &c;
  if (::epoll_ctl(L.ep, EPOLL_CTL_ADD, c.fd, &ev) != 0) die("epoll_ctl");
  c.events = EPOLLOUT;
}

// Drives one connection until OpenSSL wants the socket, or a request is written
// and its answer cannot have arrived yet. An error replaces the connection.
void drive(load& L, conn& c) {
  for (;;) {
    ERR_clear_error();
    if (c.ph == phase::connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == EINPROGRESS) return;
      if (err != 0) break;
      c.ph = phase::handshaking;
    }
    if (c.ph == phase::handshaking) {
      const int r = SSL_do_handshake(c.ssl);
      if (r != 1) {
        if (wait_for(L, c, r)) return;
        break;
      }
      ++L.handshakes;
      c.ph = phase::writing;
      c.done = 0;
    }
    if (c.ph == phase::writing) {
      std::size_t n = 0;
      const int r = SSL_write_ex(c.ssl, L.out.data() + c.done, L.o.size - c.done, &n);
      if (r != 1) {
        if (wait_for(L, c, r)) return;
        break;
      }
      c.done += n;
      if (c.done < L.o.size) continue;
      c.ph = phase::reading;
      c.done = 0;
      // The answer needs the server's turn: wait for epoll rather than read now,
      // unless OpenSSL already holds bytes it read ahead.
      if (SSL_has_pending(c.ssl) == 0) {
        watch(L, c, EPOLLIN);
        return;
      }
    }
    if (c.ph == phase::reading) {
      std::size_t n = 0;
      const int r = SSL_read_ex(c.ssl, L.in.data(), std::min(L.in.size(), L.o.size - c.done), &n);
      if (r != 1) {
        if (wait_for(L, c, r)) return;
        break;
      }
      c.done += n;
      if (c.done < L.o.size) continue;
      if (L.measuring) ++L.requests;
      if (L.o.mode == "handshake") {
        close_conn(L, c, true);
        open_conn(L, c);
        return;  // the new socket reports itself through epoll
      }
      c.ph = phase::writing;
      c.done = 0;
    }
  }
  ++L.errors;
  close_conn(L, c, false);
  open_conn(L, c);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "tls_load: %s needs a value\n", a.c_str());
      std::exit(2);
    }
    const char* v = argv[++i];
    if (a == "--host") o.host = v;
    else if (a == "--port") o.port = std::atoi(v);
    else if (a == "--mode") o.mode = v;
    else if (a == "--conns") o.conns = std::atoi(v);
    else if (a == "--size") o.size = static_cast<std::size_t>(std::atoll(v));
    else if (a == "--secs") o.secs = std::atof(v);
    else if (a == "--warmup") o.warmup = std::atof(v);
    else {
      std::fprintf(stderr, "tls_load: unknown option %s\n", a.c_str());
      std::exit(2);
    }
  }
  if (o.mode != "echo" && o.mode != "handshake" && o.mode != "bulk") {
    std::fprintf(stderr, "tls_load: --mode echo|handshake|bulk\n");
    std::exit(2);
  }
  if (o.size == 0) o.size = o.mode == "bulk" ? (1u << 20) : 1024;
  if (o.port < 1 || o.port > 65535 || o.conns < 1 || o.conns > 10000 || o.size > (64u << 20) ||
      o.secs <= 0 || o.secs > 3600 || o.warmup < 0 || o.warmup > 60) {
    std::fprintf(stderr, "tls_load: --port 1..65535, --conns 1..10000, --size ≤ 64 MiB, --secs 0..3600\n");
    std::exit(2);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  load L;
  L.o = parse(argc, argv);
  L.ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(L.ctx, SSL_VERIFY_NONE, nullptr);
  // SSL_VERIFY_NONE ignores the chain check's result but OpenSSL still runs it
  // (store lookups, chain building: ~3 % of the client's handshake): skip it. The
  // server's signature over the handshake is still checked, as TLS 1.3 requires.
  SSL_CTX_set_cert_verify_callback(L.ctx, [](X509_STORE_CTX*, void*) { return 1; }, nullptr);
  // Every handshake a full one: no session is offered (SSL_set_session is never
  // called). The client cache mode is on only so that the new-session callback
  // counts the tickets the server sends.
  SSL_CTX_set_session_cache_mode(L.ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(L.ctx, count_ticket);
  SSL_CTX_set_options(L.ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_mode(L.ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One read() per burst of records, up to 64 KiB (bulk), instead of two per record.
  SSL_CTX_set_read_ahead(L.ctx, 1);
  SSL_CTX_set_default_read_buffer_len(L.ctx, 64 * 1024);
  L.addr.sin_family = AF_INET;
  L.addr.sin_port = htons(static_cast<std::uint16_t>(L.o.port));
  if (::inet_pton(AF_INET, L.o.host.c_str(), &L.addr.sin_addr) != 1) {
    std::fprintf(stderr, "tls_load: --host must be an IPv4 address\n");
    return 2;
  }
  L.out.assign(L.o.size, 'x');
  L.in.resize(std::min<std::size_t>(L.o.size, 256 * 1024));
  L.ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<conn> conns(static_cast<std::size_t>(L.o.conns));
  for (conn& c : conns) open_conn(L, c);
  const auto start = clock_type::now();
  const auto measure_from = start + std::chrono::duration<double>(L.o.warmup);
  const auto measure_to = measure_from + std::chrono::duration<double>(L.o.secs);
  std::vector<epoll_event> evs(1024);
  for (;;) {
    const auto now = clock_type::now();
    if (!L.measuring && now >= measure_from) L.measuring = true;
    if (now >= measure_to) break;
    const int n = ::epoll_wait(L.ep, evs.data(), static_cast<int>(evs.size()), 50);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; ++i) drive(L, *static_cast<conn*>(evs[static_cast<std::size_t>(i)].data.ptr));
  }
  const double per_sec = static_cast<double>(L.requests) / L.o.secs;
  std::printf("{\"mode\": \"%s\", \"requests\": %lld, \"secs\": %.3f, \"per_sec\": %.1f, "
              "\"mib_per_sec\": %.2f, \"errors\": %lld, \"tickets_per_handshake\": %.2f}\n",
              L.o.mode.c_str(), L.requests, L.o.secs, per_sec,
              per_sec * static_cast<double>(L.o.size) / (1024.0 * 1024.0), L.errors,
              L.handshakes > 0 ? static_cast<double>(g_tickets) / static_cast<double>(L.handshakes) : 0.0);
  for (conn& c : conns) close_conn(L, c, false);
  SSL_CTX_free(L.ctx);
  return L.requests > 0 ? 0 : 1;
}
