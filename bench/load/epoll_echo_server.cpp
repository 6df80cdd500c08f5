// epoll_echo_server: the "minimal hand-written epoll loop" of BENCHMARKS.md, the 1.0x
// every echo server is compared with. One thread, level-triggered epoll, no eddy.
//
// Per readable event: one read() into a shared buffer, one write() of the same bytes.
// That is the least work an epoll echo can do, which is the point of a reference. Only
// when the peer does not take the bytes is anything kept: the rest is copied aside, the
// connection stops reading (so a slow reader cannot make us buffer without bound) and
// waits for EPOLLOUT.
//
// Runs until SIGINT or SIGTERM, then exits 0.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t kBuf = 64 * 1024;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

struct Pending {  // bytes the peer has not accepted yet; empty almost always
  std::vector<char> data;
  std::size_t off = 0;
};

struct Server {
  int ep = -1, lfd = -1;
  int spare = -1;                // reserve fd: freed to accept-and-drop when out of descriptors
  std::vector<Pending> pending;  // indexed by fd
  char buf[kBuf];

  void interest(int fd, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(ep, op, fd, &ev);
  }

  bool parked(int fd) const {
    return static_cast<std::size_t>(fd) < pending.size() && !pending[fd].data.empty();
  }

  void drop(int fd) {
    if (static_cast<std::size_t>(fd) < pending.size()) pending[fd] = Pending{};
    close(fd);  // also leaves the epoll set
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if ((errno == EMFILE || errno == ENFILE) && spare >= 0) {
          // Level-triggered: a connection left queued would wake us forever, so take it
          // with the reserve descriptor, close it and re-reserve. accept() fails with
          // EMFILE before it looks at the queue: stop once the queue is empty, or this
          // loop never ends.
          close(spare);
          int c = accept(lfd, nullptr, nullptr);
          if (c >= 0) close(c);
          spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
          if (c < 0) return;
          continue;
        }
        return;  // EAGAIN, or an error we cannot act on
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (static_cast<std::size_t>(fd) >= pending.size())
        pending.resize(static_cast<std::size_t>(fd) + 1024);
      interest(fd, EPOLLIN, EPOLL_CTL_ADD);
    }
  }

  // Writes data[0, n); returns false if the connection is gone. Keeps any rest aside.
  bool send_or_park(int fd, const char* data, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      ssize_t w = send(fd, data + done, n - done, MSG_NOSIGNAL);
      if (w > 0) {
        done += static_cast<std::size_t>(w);
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        Pending& p = pending[fd];
        p.data.assign(data + done, data + n);
        p.off = 0;
        interest(fd, EPOLLOUT, EPOLL_CTL_MOD);  // stop reading until this drains
        return true;
      } else {
        return false;
      }
    }
    return true;
  }

  void on_readable(int fd) {
    ssize_t n = read(fd, buf, kBuf);
    if (n > 0) {
      if (!send_or_park(fd, buf, static_cast<std::size_t>(n))) drop(fd);
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      drop(fd);
    }
  }

  void on_writable(int fd) {
    Pending& p = pending[fd];
    while (p.off < p.data.size()) {
      ssize_t w = send(fd, p.data.data() + p.off, p.data.size() - p.off, MSG_NOSIGNAL);
      if (w > 0) {
        p.off += static_cast<std::size_t>(w);
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        drop(fd);
        return;
      }
    }
    p = Pending{};
    interest(fd, EPOLLIN, EPOLL_CTL_MOD);
  }
};

int usage(FILE* f, int rc) {
  std::fputs(
      "usage: epoll_echo_server [--host H] [--port P]\n"
      "  --host H   address or name to listen on (default 127.0.0.1)\n"
      "  --port P   0..65535, 0 picks a free port (default 7000)\n"
      "Prints 'listening on HOST PORT' once ready; exits 0 on SIGINT/SIGTERM.\n",
      f);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned port = 7000;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") return usage(stdout, 0);
    if ((a == "--host" || a == "--port") && i + 1 < argc) {
      std::string_view v = argv[++i];
      if (a == "--host") {
        if (v.empty()) {
          std::fputs("epoll_echo_server: --host must not be empty\n", stderr);
          return 2;
        }
        host = std::string(v);
      } else {
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), port);
        if (ec != std::errc() || p != v.data() + v.size() || port > 65535) {
          std::fprintf(stderr,
                       "epoll_echo_server: --port must be an integer in 0..65535 (got '%s')\n",
                       argv[i]);
          return 2;
        }
      }
      continue;
    }
    std::fprintf(stderr, "epoll_echo_server: unknown or incomplete argument '%s'\n", argv[i]);
    return usage(stderr, 2);
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res); rc != 0) {
    std::fprintf(stderr, "epoll_echo_server: --host '%s': %s\n", host.c_str(), gai_strerror(rc));
    return 2;
  }

  static Server s;  // static: the 64 KiB buffer stays off the stack
  s.lfd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(s.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (s.lfd < 0 || bind(s.lfd, res->ai_addr, res->ai_addrlen) != 0 ||
      listen(s.lfd, SOMAXCONN) != 0) {
    std::fprintf(stderr, "epoll_echo_server: listen on %s:%u: %s\n", host.c_str(), port,
                 std::strerror(errno));
    return 1;
  }
  freeaddrinfo(res);
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(s.lfd, reinterpret_cast<sockaddr*>(&bound), &blen);
  char hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
  getnameinfo(reinterpret_cast<sockaddr*>(&bound), blen, hbuf, sizeof hbuf, pbuf, sizeof pbuf,
              NI_NUMERICHOST | NI_NUMERICSERV);

  // SIGINT/SIGTERM stay blocked except inside epoll_pwait, so a signal can never land
  // between checking g_stop and going to sleep.
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  sigset_t block, during_wait;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigprocmask(SIG_BLOCK, &block, &during_wait);
  sigdelset(&during_wait, SIGINT);
  sigdelset(&during_wait, SIGTERM);

  s.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  s.ep = epoll_create1(EPOLL_CLOEXEC);
  s.interest(s.lfd, EPOLLIN, EPOLL_CTL_ADD);
  std::printf("listening on %s %s\n", hbuf, pbuf);
  std::fflush(stdout);

  epoll_event evs[512];
  while (!g_stop) {
    int n = epoll_pwait(s.ep, evs, 512, -1, &during_wait);
    for (int k = 0; k < n; ++k) {
      int fd = evs[k].data.fd;
      if (fd == s.lfd) {
        s.accept_all();
      } else if (s.parked(fd)) {
        // Also for EPOLLERR/EPOLLHUP: a parked connection must not read more before its
        // rest is out (order), and send() reports the error.
        s.on_writable(fd);
      } else {
        s.on_readable(fd);  // EPOLLIN, or EPOLLERR/EPOLLHUP which read() reports
      }
    }
  }
  return 0;
}
