// echo_load's epoll engine (--engine epoll, the default): one epoll loop per thread,
// one send() and one recv() system call per request plus one epoll_wait per wakeup.
// The model (what to send, how to verify and time it) is ConnCore's, engine_common.hpp.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <tuple>

#include "engine_common.hpp"

namespace echo_load {
namespace {

// epoll usage: level-triggered, EPOLLIN always on, EPOLLOUT only while a send is blocked.
// For small messages that is one recv() per readiness and no epoll_ctl at all, the same
// syscall count edge-triggered mode would give, without ET's need to read until EAGAIN
// (one wasted recv per wakeup) and without a writable socket waking us on every wait.
class EpollWorker : ConnCore {
 public:
  EpollWorker(const Plan& plan, std::uint32_t first_id, std::uint32_t stride)
      : ConnCore(plan, first_id, stride), rbuf_(new unsigned char[kReadChunk]) {}

  Result run() {
    // Rate mode sleeps to exact send times; the default 50 us timer slack would add
    // that much (unmeasured by us, charged to the server) to every scheduled send.
    if (o_.rate > 0) prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      std::perror("echo_load: epoll_create1");
      res_.errors.connect += conns_.size();
      return std::move(res_);
    }
    for (std::size_t i = 0; i < conns_.size(); ++i) start_connect(i);
    loop();
    tally_end();
    for (auto& c : conns_)
      if (c.fd >= 0) close(c.fd);
    close(epfd_);
    return std::move(res_);
  }

 private:
  void loop() {
    epoll_event evs[512];
    bool have_pwait2 = true;
    while (live_ > 0) {
      std::int64_t now = mono_ns();
      if (now >= p_.t_end) return;
      fire_timers(now, [this](std::size_t i, std::int64_t t) { pump(i, t); });
      std::int64_t wait = std::max<std::int64_t>(next_wake() - mono_ns(), 0);
      int n;
      if (have_pwait2) {
        // Nanosecond timeout: epoll_wait's milliseconds would quantise --rate sends.
        timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
        n = epoll_pwait2(epfd_, evs, 512, &ts, nullptr);
        if (n < 0 && errno == ENOSYS) {
          have_pwait2 = false;
          continue;
        }
      } else {
        n = epoll_wait(epfd_, evs, 512, static_cast<int>((wait + 999999) / 1000000));
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("echo_load: epoll_wait");
        return;
      }
      for (int k = 0; k < n; ++k) on_event(evs[k].data.u64, evs[k].events);
    }
  }

  void start_connect(std::size_t i) {
    if (!open_socket(i, SOCK_NONBLOCK)) return;
    Conn& c = conns_[i];
    int r = connect(c.fd, reinterpret_cast<const sockaddr*>(&p_.addr), p_.addrlen);
    if (r < 0 && errno != EINPROGRESS) {
      if (!warned_connect_) std::fprintf(stderr, "echo_load: connect: %s\n", std::strerror(errno));
      warned_connect_ = true;
      close(c.fd);
      c.fd = -1;
      c.state = State::Dead;
      ++res_.errors.connect;
      return;
    }
    ++live_;
    epoll_event ev{};
    ev.events = r == 0 ? EPOLLIN : EPOLLOUT;  // writability reports connect completion
    ev.data.u64 = i;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
    if (r == 0) on_connected(i, mono_ns());
  }

  void on_connected(std::size_t i, std::int64_t now) {
    connected(i, now);
    pump(i, now);
  }

  // Issue every message that may go now, then write what is unsent.
  void pump(std::size_t i, std::int64_t now) {
    issue(i, now);
    flush(i);
  }

  void flush(std::size_t i) {
    Conn& c = conns_[i];
    for (auto [off, len] = unsent(c); len > 0; std::tie(off, len) = unsent(c)) {
      ssize_t n = send(c.fd, pat_ + off, len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.sent += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!c.want_out) set_interest(i, EPOLLIN | EPOLLOUT);
        c.want_out = true;
        return;
      }
      fail(i, res_.errors.reset);
      return;
    }
    if (c.want_out) set_interest(i, EPOLLIN);
    c.want_out = false;
  }

  void set_interest(std::size_t i, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = i;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, conns_[i].fd, &ev);
  }

  void on_event(std::size_t i, std::uint32_t events) {
    Conn& c = conns_[i];
    if (c.state == State::Dead) return;
    if (c.state == State::Connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
        if (!warned_connect_)
          std::fprintf(stderr, "echo_load: connect: %s\n", std::strerror(err ? err : ECONNRESET));
        warned_connect_ = true;
        fail(i, res_.errors.connect);
        return;
      }
      set_interest(i, EPOLLIN);
      on_connected(i, mono_ns());
      return;
    }
    // EPOLLERR/EPOLLHUP also go through recv(), which reports the precise error or EOF.
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(i);
    if (c.state == State::Open && (events & EPOLLOUT) && c.want_out) flush(i);
  }

  void on_readable(std::size_t i) {
    Conn& c = conns_[i];
    ssize_t n = recv(c.fd, rbuf_.get(), kReadChunk, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      fail(i, res_.errors.reset);
      return;
    }
    if (n == 0) {  // the server closed: whatever was outstanding is a short read
      fail(i, res_.errors.eof);
      return;
    }
    std::int64_t now = 0;
    switch (received(i, rbuf_.get(), static_cast<std::uint64_t>(n), c.sent, &now)) {
      case Rx::Mismatch:
        fail(i, res_.errors.mismatch);
        return;
      case Rx::Partial:
        return;
      case Rx::Completed:
        pump(i, now);
        return;
    }
  }

  void fail(std::size_t i, std::uint64_t& counter) {
    Conn& c = conns_[i];
    ++counter;
    close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    c.state = State::Dead;
    --live_;
  }

  std::unique_ptr<unsigned char[]> rbuf_;  // verified and dropped at once: one per thread
  int epfd_ = -1;
};

}  // namespace

Result run_epoll(const Plan& plan, std::uint32_t first_id, std::uint32_t stride) {
  return EpollWorker(plan, first_id, stride).run();
}

}  // namespace echo_load
