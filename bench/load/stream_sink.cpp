// stream_sink: the hand-written reference of the one-way stream row (S1 in
// bench/compare): one thread, edge-triggered epoll, no runtime, reading 256 KiB at
// a time (asyncio's and uvloop's read size) into one buffer and discarding it.
//
//   stream_sink --port PORT      (127.0.0.1; runs until SIGINT or SIGTERM)
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }
char buf[256 * 1024];
}  // namespace

int main(int argc, char** argv) {
  int port = -1;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
  if (port < 1 || port > 65535) {
    std::fprintf(stderr, "usage: stream_sink --port PORT (1..65535)\n");
    return 2;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 1024) != 0) {
    std::perror("stream_sink: bind/listen");
    return 1;
  }
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::printf("listening on 127.0.0.1 %d\n", port);
  std::fflush(stdout);
  epoll_event evs[64];
  while (!g_stop) {
    const int n = epoll_wait(ep, evs, 64, 100);
    for (int i = 0; i < n; ++i) {
      const int fd = evs[i].data.fd;
      if (fd == lfd) {
        for (int c; (c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          epoll_event ce{};
          ce.events = EPOLLIN | EPOLLET;
          ce.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      for (;;) {  // edge-triggered: read until EAGAIN (a short read means empty)
        const ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r == static_cast<ssize_t>(sizeof buf)) continue;
        if (r > 0) break;
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        close(fd);  // EOF or error
        break;
      }
    }
  }
  return 0;
}
