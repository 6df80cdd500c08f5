// The epoll backend: the readiness engine (io/readiness/) over epoll. What this
// file adds is only the mechanism: one EPOLL_CTL_ADD per watch, edge-triggered,
// for IN|OUT|RDHUP|PRI (never modified or re-armed per operation), one
// EPOLL_CTL_DEL when the watch ends, one epoll_pwait2 per loop iteration whose
// events all reach the engine before it returns (epoll_wait, timeouts rounded up
// to the millisecond, where epoll_pwait2 is missing or refused: Linux before 5.11,
// or a container seccomp profile older than the call), and the loop's wakeup eventfd,
// whose token is consumed (and the wakeup_token cleared) wherever an epoll_wait
// returns it, blocking or not.
//
// A registration belongs to the open file, not to the number: close() alone
// removes it only when the file's last reference goes, so while a dup or another
// process holds the file it lives on under the old number (libuv and tokio learnt
// this the same way). Hence EPOLL_CTL_DEL before every close the engine makes,
// EEXIST on add taken over with EPOLL_CTL_MOD (which re-arms the edge) plus a
// probe, and the watch's generation in the event's data beside the fd, so an event
// of an ended watch is dropped (docs/fd_ownership.md). An fd eddy does not own
// (poll_fd_unowned) is never deleted: each wait on it re-targets the registration
// with one MOD (ADD if its file was closed meanwhile).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <ctime>
#include <poll.h>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "compat/kernel_probe.hpp"
#include "io/backend.hpp"
#include "io/readiness/readiness_backend.hpp"
#include "runtime/log.hpp"

namespace eddy::detail {
namespace {

constexpr std::uint64_t wake_key = ~std::uint64_t{0};

// Set once any loop of the process found epoll_pwait2 missing or refused, so later
// loops start on epoll_wait instead of failing one call each.
std::atomic<bool> no_pwait2{false};

class epoll_backend final : public readiness_backend {
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
    use_wait_ = no_pwait2.load(std::memory_order_relaxed);
    caps_.ns_timeouts = !use_wait_;
    caps_.multishot_recv = true;
    events_.resize(256);
  }
  ~epoll_backend() override {
    engine_.retire();  // while evfd_ still wakes us
    ::close(evfd_);
    ::close(epfd_);
  }

  backend_kind kind() const noexcept override { return backend_kind::epoll; }
  const backend_caps& caps() const noexcept override { return caps_; }

  bool completions_pending() noexcept override {
    if (engine_.has_deferred()) return true;
    pollfd p{epfd_, POLLIN, 0};  // the epoll fd is readable while events wait
    return ::poll(&p, 1, 0) > 0;
  }

  unsigned reap(unsigned budget) override { return poll_events(0, budget); }
  unsigned wait(std::int64_t timeout_ns, unsigned budget) override {
    return poll_events(timeout_ns, budget);
  }

  bool wake() noexcept override {
    if (!token_.claim()) return false;
    const std::uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop is certainly woken.
    [[maybe_unused]] ssize_t r = ::write(evfd_, &one, sizeof one);
    return true;
  }

 private:
  int watch(int fd, std::uint32_t gen) noexcept override {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
    ev.data.u64 = static_cast<std::uint32_t>(fd) | (std::uint64_t{gen} << 32);
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
    if (errno != EEXIST) return -errno;
    if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) return -errno;
    return watch_took_over;
  }
  // An unowned fd (poll_fd_unowned) that was watched before is usually the same
  // file again: MOD re-targets its registration and, like ADD, makes the kernel
  // report the current state. ENOENT: the file was closed (its registration went
  // with it) and the number names a new one, so ADD. A registration of an old
  // file that a dup elsewhere keeps alive stays behind under its old generation;
  // its events are dropped, and it goes when that file's last fd closes.
  int watch_unowned(int fd, std::uint32_t gen, bool maybe_registered) noexcept override {
    if (!maybe_registered) return watch(fd, gen);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
    ev.data.u64 = static_cast<std::uint32_t>(fd) | (std::uint64_t{gen} << 32);
    if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
    if (errno != ENOENT) return -errno;
    return watch(fd, gen);
  }
  bool keeps_unowned() const noexcept override { return true; }
  void forget(int fd) noexcept override {
    // ENOENT/EBADF: nothing registered under fd (it was closed outside eddy).
    (void)::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  }
  void wake_owner() noexcept override { (void)wake(); }

  static unsigned to_ready(std::uint32_t e) noexcept {
    unsigned r = 0;
    if (e & EPOLLIN) r |= ready_read;
    if (e & EPOLLOUT) r |= ready_write;
    if (e & EPOLLERR) r |= ready_error;
    if (e & EPOLLHUP) r |= ready_hangup;
    if (e & EPOLLRDHUP) r |= ready_rdhup;
    if (e & EPOLLPRI) r |= ready_pri;
    return r;
  }

  unsigned poll_events(std::int64_t timeout_ns, unsigned budget) {
    unsigned done = 0;
    engine_.run_remote_closes();
    if (engine_.has_deferred()) {
      done = engine_.run_deferred();
      if (done != 0) timeout_ns = 0;
    }
    const int max = static_cast<int>(budget < events_.size() ? budget : events_.size());
    const int n = wait_for_events(max, timeout_ns);
    if (n < 0) {
      if (errno == EINTR) return done;
      throw std::system_error(errno, std::system_category(),
                              use_wait_ ? "eddy: epoll_wait" : "eddy: epoll_pwait2");
    }
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = events_[static_cast<std::size_t>(i)];
      if (ev.data.u64 == wake_key) {
        std::uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(evfd_, &v, sizeof v);
        token_.consumed();
        engine_.run_remote_closes();
        continue;
      }
      engine_.ready(static_cast<int>(static_cast<std::uint32_t>(ev.data.u64)),
                    static_cast<std::uint32_t>(ev.data.u64 >> 32), to_ready(ev.events));
      ++done;
    }
    return done;
  }

  // One wait for events: epoll_pwait2 with the timeout to the nanosecond, or
  // epoll_wait with it rounded up to the millisecond (never early: a timer due in
  // 0.2 ms is at most 0.8 ms late, as on libuv). The first ENOSYS or EPERM from
  // epoll_pwait2 switches this loop, and later ones, to epoll_wait for good; the
  // refused call did nothing, so the wait is simply made again.
  int wait_for_events(int max, std::int64_t timeout_ns) {
    if (!use_wait_) {
      timespec ts{};
      timespec* tsp = nullptr;
      if (timeout_ns >= 0) {
        ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
        tsp = &ts;
      }
      const int n = ::epoll_pwait2(epfd_, events_.data(), max, tsp, nullptr);
      if (n >= 0 || !epoll_pwait2_missing(errno)) return n;
      log_debug("eddy: epoll_pwait2 failed with %s; waiting with epoll_wait, timeouts rounded up "
                "to the millisecond", errno_reason(errno).c_str());
      use_wait_ = true;
      caps_.ns_timeouts = false;
      no_pwait2.store(true, std::memory_order_relaxed);
    }
    int ms = -1;
    if (timeout_ns >= 0) {
      const std::int64_t up = (timeout_ns + 999'999) / 1'000'000;
      ms = up > INT_MAX ? INT_MAX : static_cast<int>(up);
    }
    return ::epoll_wait(epfd_, events_.data(), max, ms);
  }

  int epfd_ = -1;
  int evfd_ = -1;
  bool use_wait_ = false;  // epoll_wait instead of epoll_pwait2
  std::vector<epoll_event> events_;
  wakeup_token token_;
  backend_caps caps_;
};

}  // namespace

std::unique_ptr<backend> make_epoll_backend(const backend_config&) {
  return std::make_unique<epoll_backend>();
}

bool epoll_usable(std::string& why) {
  epoll_probe p = probe_epoll();
  why = std::move(p.why);
  return p.usable;
}

}  // namespace eddy::detail
