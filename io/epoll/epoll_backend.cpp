// The epoll backend: the completion contract over a readiness kernel, as
// Boost.Asio's reactor does it.
//
// submit(op): if no earlier op of the same direction waits on the fd, try the
// syscall at once; most reads and writes on a busy socket complete right there
// and the coroutine never suspends. On EAGAIN the op joins the fd's FIFO for its
// direction (read, write, or poll), and the fd is registered once, edge-triggered,
// for IN|OUT|RDHUP. When an edge arrives, the queued ops of that direction are
// retried in order until one sees EAGAIN again.
//
// Why edge-triggered: one epoll_ctl per fd lifetime, no re-arming per op. Lost
// edges cannot strand an op: an op only queues after its own attempt saw EAGAIN,
// and the registration, made before any wait, reports any later edge. Data that
// arrives while nobody waits is found by the next op's first attempt.
//
// Ops must be on non-blocking fds (eddy's sockets and pipes are). An fd must be
// closed through eddy (close / close_now) so its registration and waiters go
// with it; a number reused behind our back would keep a stale registration.
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <system_error>
#include <vector>

#include "io/backend.hpp"

namespace eddy::detail {
namespace {

enum class dir : std::uint8_t { in, out, poll, none };

dir direction(const io_op& op) noexcept {
  switch (op.code) {
    case op_code::read:
    case op_code::readv:
    case op_code::accept:
    case op_code::recv:
    case op_code::recvmsg:
    case op_code::splice:
      return dir::in;
    case op_code::write:
    case op_code::writev:
    case op_code::connect:
    case op_code::send:
    case op_code::sendmsg:
      return dir::out;
    case op_code::poll:
      return dir::poll;
    default:
      return dir::none;
  }
}

struct op_list {
  io_op* head = nullptr;
  io_op* tail = nullptr;
  bool empty() const noexcept { return head == nullptr; }
  void push(io_op* op) noexcept {
    op->link_next = nullptr;
    op->link_prev = tail;
    if (tail != nullptr)
      tail->link_next = op;
    else
      head = op;
    tail = op;
  }
  void remove(io_op* op) noexcept {
    if (op->link_prev != nullptr)
      op->link_prev->link_next = op->link_next;
    else
      head = op->link_next;
    if (op->link_next != nullptr)
      op->link_next->link_prev = op->link_prev;
    else
      tail = op->link_prev;
    op->link_next = op->link_prev = nullptr;
  }
};

struct fd_state {
  op_list lists[3];  // dir::in, dir::out, dir::poll
  bool registered = false;
};

constexpr std::uint64_t wake_key = ~std::uint64_t{0};

int err() noexcept {
  return -errno;
}

class epoll_backend final : public backend {
 public:
  epoll_backend() {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw std::system_error(errno, std::system_category(), "eddy: epoll_create1");
    evfd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (evfd_ < 0) {
      const int e = errno;
      ::close(epfd_);
      throw std::system_error(e, std::system_category(), "eddy: eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_key;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) != 0) {
      const int e = errno;
      ::close(evfd_);
      ::close(epfd_);
      throw std::system_error(e, std::system_category(), "eddy: epoll_ctl(eventfd)");
    }
    caps_.ns_timeouts = true;
    events_.resize(256);
  }
  ~epoll_backend() override {
    ::close(evfd_);
    ::close(epfd_);
  }

  backend_kind kind() const noexcept override { return backend_kind::epoll; }
  const backend_caps& caps() const noexcept override { return caps_; }
  std::size_t in_flight() const noexcept override { return in_flight_; }

  bool submit(io_op& op) override {
    op.cancel_requested = false;
    op.cqe_flags = 0;
    switch (op.code) {
      case op_code::nop:
        return complete_inline(op, 0);
      case op_code::close:
        return complete_inline(op, do_close(op.fd));
      case op_code::shutdown:
        return complete_inline(op, ::shutdown(op.fd, static_cast<int>(op.flags)) == 0 ? 0 : err());
      default:
        break;
    }
    const dir d = direction(op);
    if (d == dir::none)
      return complete_inline(op, -EINVAL);  // e.g. accept_multi: no multishot on epoll
    if (op.fd < 0) return complete_inline(op, -EBADF);
    fd_state& st = state(op.fd);
    op_list& list = st.lists[static_cast<int>(d)];
    op.state = op_state::idle;
    if (list.empty()) {
      const int r = attempt(op);
      if (r != -EAGAIN) return complete_inline(op, r);
    }
    if (!st.registered) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.u64 = static_cast<std::uint64_t>(op.fd);
      if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, op.fd, &ev) != 0 && errno != EEXIST)
        return complete_inline(op, err());
      st.registered = true;
    }
    list.push(&op);
    op.state = op_state::in_flight;
    ++in_flight_;
    return false;
  }

  void cancel(io_op& op) noexcept override {
    if (op.state != op_state::in_flight) return;
    op.cancel_requested = true;
    fd_state& st = fds_[static_cast<std::size_t>(op.fd)];
    st.lists[static_cast<int>(direction(op))].remove(&op);
    finish(op, -ECANCELED);
  }

  void close_now(int fd) noexcept override { (void)do_close(fd); }

  unsigned reap(unsigned budget) override { return poll_events(0, budget); }
  unsigned wait(std::int64_t timeout_ns, unsigned budget) override {
    return poll_events(timeout_ns, budget);
  }

  void wake() noexcept override {
    const std::uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop is certainly woken.
    [[maybe_unused]] ssize_t r = ::write(evfd_, &one, sizeof one);
  }

 private:
  fd_state& state(int fd) {
    const auto i = static_cast<std::size_t>(fd);
    if (i >= fds_.size()) fds_.resize(i + 1 > fds_.size() * 2 ? i + 1 : fds_.size() * 2);
    return fds_[i];
  }

  void finish(io_op& op, int res) noexcept {
    op.res = res;
    op.state = op_state::done;
    --in_flight_;
    op.complete(&op);
  }

  static int attempt(io_op& op) noexcept {
    for (;;) {
      ssize_t r = -1;
      const std::size_t len = op.len;
      switch (op.code) {
        case op_code::read:
          r = op.offset == UINT64_MAX ? ::read(op.fd, op.buf, len)
                                      : ::pread(op.fd, op.buf, len, static_cast<off_t>(op.offset));
          break;
        case op_code::write:
          r = op.offset == UINT64_MAX ? ::write(op.fd, op.buf, len)
                                      : ::pwrite(op.fd, op.buf, len, static_cast<off_t>(op.offset));
          break;
        case op_code::readv:
          r = op.offset == UINT64_MAX
                  ? ::readv(op.fd, static_cast<iovec*>(op.buf), static_cast<int>(len))
                  : ::preadv(op.fd, static_cast<iovec*>(op.buf), static_cast<int>(len),
                             static_cast<off_t>(op.offset));
          break;
        case op_code::writev:
          r = op.offset == UINT64_MAX
                  ? ::writev(op.fd, static_cast<iovec*>(op.buf), static_cast<int>(len))
                  : ::pwritev(op.fd, static_cast<iovec*>(op.buf), static_cast<int>(len),
                              static_cast<off_t>(op.offset));
          break;
        case op_code::accept:
          r = ::accept4(op.fd, static_cast<sockaddr*>(op.buf), static_cast<socklen_t*>(op.aux),
                        static_cast<int>(op.flags));
          break;
        case op_code::connect: {
          if (op.state == op_state::in_flight) {
            // Retried after EINPROGRESS: the outcome is in SO_ERROR.
            int so = 0;
            socklen_t sl = sizeof so;
            if (::getsockopt(op.fd, SOL_SOCKET, SO_ERROR, &so, &sl) != 0) return err();
            return so == 0 ? 0 : -so;
          }
          r = ::connect(op.fd, static_cast<sockaddr*>(op.buf), static_cast<socklen_t>(len));
          if (r != 0 && errno == EINPROGRESS) return -EAGAIN;
          break;
        }
        case op_code::recv:
          r = ::recv(op.fd, op.buf, len, static_cast<int>(op.flags));
          break;
        case op_code::send:
          r = ::send(op.fd, op.buf, len, static_cast<int>(op.flags) | MSG_NOSIGNAL);
          break;
        case op_code::recvmsg:
          r = ::recvmsg(op.fd, static_cast<msghdr*>(op.buf), static_cast<int>(op.flags));
          break;
        case op_code::sendmsg:
          r = ::sendmsg(op.fd, static_cast<msghdr*>(op.buf),
                        static_cast<int>(op.flags) | MSG_NOSIGNAL);
          break;
        case op_code::splice:
          r = ::splice(op.fd, nullptr, op.aux_fd, nullptr, len, op.flags | SPLICE_F_NONBLOCK);
          break;
        case op_code::poll: {
          pollfd p{op.fd, static_cast<short>(op.flags), 0};
          r = ::poll(&p, 1, 0);
          if (r == 0) return -EAGAIN;
          if (r > 0) return p.revents;
          break;
        }
        default:
          return -EINVAL;
      }
      if (r >= 0) return r > INT_MAX ? INT_MAX : static_cast<int>(r);
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return -EAGAIN;
      return err();
    }
  }

  int do_close(int fd) noexcept {
    if (fd < 0) return -EBADF;
    if (static_cast<std::size_t>(fd) < fds_.size()) {
      fd_state& st = fds_[static_cast<std::size_t>(fd)];
      for (op_list& l : st.lists) {
        while (io_op* op = l.head) {
          l.remove(op);
          op->cancel_requested = true;
          finish(*op, -ECANCELED);
        }
      }
      if (st.registered) {
        ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
        st.registered = false;
      }
    }
    // close() may fail with EINTR after releasing the fd (Linux); never retry it.
    return ::close(fd) == 0 ? 0 : err();
  }

  void drain(op_list& l) noexcept {
    while (io_op* op = l.head) {
      const int r = attempt(*op);
      if (r == -EAGAIN) return;
      l.remove(op);
      finish(*op, r);
    }
  }

  unsigned poll_events(std::int64_t timeout_ns, unsigned budget) {
    const int max = static_cast<int>(budget < events_.size() ? budget : events_.size());
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout_ns >= 0) {
      ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
      tsp = &ts;
    }
    const int n = ::epoll_pwait2(epfd_, events_.data(), max, tsp, nullptr);
    if (n < 0) {
      if (errno == EINTR) return 0;
      throw std::system_error(errno, std::system_category(), "eddy: epoll_pwait2");
    }
    unsigned done = 0;
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = events_[static_cast<std::size_t>(i)];
      if (ev.data.u64 == wake_key) {
        std::uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(evfd_, &v, sizeof v);
        continue;
      }
      const auto fd = static_cast<std::size_t>(ev.data.u64);
      if (fd >= fds_.size()) continue;
      fd_state& st = fds_[fd];
      const std::uint32_t e = ev.events;
      if (e & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) drain(st.lists[0]);
      if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) drain(st.lists[1]);
      op_list& polls = st.lists[2];
      for (io_op* op = polls.head; op != nullptr;) {
        io_op* next = op->link_next;
        const unsigned rev = e & (op->flags | POLLERR | POLLHUP);
        if (rev != 0) {
          polls.remove(op);
          finish(*op, static_cast<int>(rev));
        }
        op = next;
      }
      ++done;
    }
    return done;
  }

  int epfd_ = -1;
  int evfd_ = -1;
  std::vector<fd_state> fds_;
  std::vector<epoll_event> events_;
  std::size_t in_flight_ = 0;
  backend_caps caps_;
};

}  // namespace

std::unique_ptr<backend> make_epoll_backend(const loop_options&) {
  return std::make_unique<epoll_backend>();
}

}  // namespace eddy::detail
