// Accepting connections, for tcp_listener and unix_listener.
//
// Two ways, chosen once per listener from the backend's caps():
//  - multishot (caps().multishot_accept; io_uring 5.19+): one accept_multi op
//    stays armed; each completion with `more` set is one accepted fd, queued
//    in `ready` and handed to the first waiting accept(). The op is in flight until
//    a completion without `more` (an error or a cancel); only then may it be
//    re-armed, and only a waiting accept() re-arms it (never the completion
//    callback, which runs inside the backend's completion drain). The state is shared: the armed op holds a
//    reference (`self`), so it outlives the listener object until its final CQE.
//    At most `ready_cap` fds wait in user space: past that, with nobody accepting,
//    the op is cancelled and connections stay in the kernel's backlog.
//  - one accept op per accept() (epoll: accept4, then wait for readiness on EAGAIN).
//
// EMFILE/ENFILE: accept4 returns EMFILE before looking at the queue, so retrying
// spins. We free the reserve fd (/dev/null, opened at bind), accept and close
// connections while that works, and stop at the first failure (EAGAIN: the queue
// is empty; EMFILE: another thread took the slot). Then the reserve is taken back
// and, the queue being empty, we poll the listener for the next connection before
// accepting again: accept fails with EMFILE before it looks at the queue, so
// accepting at once would spin. If the reserve cannot be taken back we back off
// (10 ms doubling to 1 s). Accepts resume by themselves once fds are free.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <eddy/detail/intrusive_list.hpp>
#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/time.hpp>
#include <memory>
#include <system_error>

#include "io/backend.hpp"

namespace eddy::detail {

namespace {
constexpr std::size_t ready_cap = 64;
constexpr int accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;

int open_reserve() noexcept {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

struct accept_waiter;
}  // namespace

struct listener_state : std::enable_shared_from_this<listener_state> {
  loop* l = nullptr;
  int fd = -1;
  int reserve = -1;
  bool multishot = false;
  bool closed = false;
  int error = 0;
  bool need_shed = false;
  int backoff_ms = 0;
  std::uint64_t shed = 0;
  io_op mop{};
  std::shared_ptr<listener_state> self;  // held while mop is in flight
  std::deque<int> ready;
  intrusive_list<accept_waiter> waiters;  // tasks in accept(), oldest first
  event final_seen;  // set when mop's final CQE arrives after close

  ~listener_state() {
    for (int f : ready) ::close(f);
    if (reserve >= 0) ::close(reserve);
  }
  bool armed() const noexcept { return mop.state == op_state::in_flight; }
  void link(accept_waiter* w) noexcept;
  void unlink(accept_waiter* w) noexcept;
  void wake_one() noexcept;
  void wake_all() noexcept;
  void arm();
  static void on_multi(io_op* op) noexcept;
};

namespace {

struct accept_waiter {
  listener_state* s;
  std::coroutine_handle<> h{};
  task_core* core = nullptr;
  cancel_hook hook{&on_cancel, [](const cancel_hook* hk, wait_description& d) noexcept {
                      d.kind = "accept";
                      d.fd = outer_of(const_cast<cancel_hook*>(hk), &accept_waiter::hook)->s->fd;
                    }};
  accept_waiter* next = nullptr;
  accept_waiter* prev = nullptr;
  bool linked = false;
  bool cancelled = false;

  explicit accept_waiter(listener_state* st) noexcept : s(st) {}
  bool await_ready() noexcept {
    cancelled = consume_pending_cancel();
    return cancelled;
  }
  void await_suspend(std::coroutine_handle<> hh) noexcept {
    h = hh;
    core = current_core();
    s->link(this);
    if (core != nullptr) core->hook_ = &hook;
  }
  void await_resume() {
    if (core != nullptr && core->hook_ == &hook) core->hook_ = nullptr;
    if (cancelled) throw cancelled_error{};
  }
  static bool on_cancel(cancel_hook* hk) noexcept {
    accept_waiter* w = outer_of(hk, &accept_waiter::hook);
    if (!w->linked) return false;  // already woken: delivered at the next await
    w->s->unlink(w);
    w->cancelled = true;
    detail::loop_schedule(*w->s->l, w->core, w->h);
    return true;
  }
};

}  // namespace

void listener_state::link(accept_waiter* w) noexcept {
  waiters.push_back(w);
  w->linked = true;
}

void listener_state::unlink(accept_waiter* w) noexcept {
  waiters.remove(w);
  w->linked = false;
}

void listener_state::wake_one() noexcept {
  if (accept_waiter* w = waiters.head) {
    unlink(w);
    detail::loop_schedule(*l, w->core, w->h);
  }
}

void listener_state::wake_all() noexcept {
  while (accept_waiter* w = waiters.head) {
    unlink(w);
    w->cancelled = true;
    detail::loop_schedule(*l, w->core, w->h);
  }
}

void listener_state::arm() {
  mop = io_op{};
  mop.code = op_code::accept_multi;
  mop.fd = fd;
  mop.flags = accept_flags;
  mop.complete = &on_multi;
  self = shared_from_this();
  if (detail::loop_io(*l).submit(mop)) {  // refused inline (bad fd): report it to the caller
    self.reset();
    error = mop.res < 0 ? -mop.res : EINVAL;
  }
}

void listener_state::on_multi(io_op* op) noexcept {
  listener_state* s = outer_of(op, &listener_state::mop);
  const int r = op->res;
  if (r >= 0) {
    if (s->closed)
      ::close(r);
    else
      s->ready.push_back(r);
  } else if (r == -EMFILE || r == -ENFILE) {
    s->need_shed = true;
  } else if (r != -ECANCELED && r != -ECONNABORTED && r != -EINTR && r != -EAGAIN) {
    s->error = -r;
  }
  const bool final = !op->more;
  s->wake_one();
  if (!final && s->waiters.empty() && s->ready.size() >= ready_cap) detail::loop_io(*s->l).cancel(*op);
  if (final) {
    if (s->closed) s->final_seen.set();
    std::shared_ptr<listener_state> keep = std::move(s->self);  // may free s on return
  }
}

namespace {

task<void> shed_connections(std::shared_ptr<listener_state> s) {
  if (s->reserve >= 0) {
    ::close(s->reserve);
    s->reserve = -1;
    int err = 0;
    for (;;) {
      const int c = ::accept4(s->fd, nullptr, nullptr, accept_flags);
      if (c < 0) {  // EAGAIN (queue empty) or EMFILE (slot taken): stop, never spin
        err = errno;
        break;
      }
      ::close(c);
      ++s->shed;
    }
    s->reserve = open_reserve();
    if (s->reserve >= 0) {
      s->backoff_ms = 0;
      // The queue is empty, but the next accept would fail with EMFILE at once
      // anyway: both accept4 and io_uring's ACCEPT (6.18 still) take an fd before
      // they look at the queue. So wait for a connection first; poll needs no fd.
      if (err == EAGAIN || err == EWOULDBLOCK) (void)co_await eddy::poll(s->fd, POLLIN);
      co_return;
    }
  }
  s->backoff_ms = s->backoff_ms == 0 ? 10 : std::min(s->backoff_ms * 2, 1000);
  co_await sleep_for(std::chrono::milliseconds(s->backoff_ms));
  if (s->reserve < 0) s->reserve = open_reserve();
}

[[noreturn]] void closed_error() {
  throw std::system_error(EBADF, std::system_category(), "eddy: accept on a closed listener");
}

task<unique_fd> accept_multishot(std::shared_ptr<listener_state> s) {
  for (;;) {
    if (s->closed) closed_error();
    if (!s->ready.empty()) {
      const int f = s->ready.front();
      s->ready.pop_front();
      co_return unique_fd(f);
    }
    if (s->need_shed) {
      s->need_shed = false;
      co_await shed_connections(s);
      continue;
    }
    if (s->error != 0) {
      const int e = std::exchange(s->error, 0);
      throw std::system_error(e, std::system_category(), "eddy: accept");
    }
    if (!s->armed()) {
      s->arm();
      if (s->error != 0) continue;
    }
    co_await accept_waiter(s.get());
  }
}

// One accept op; with `peer` non-null, accept4 fills it (the kernel reads the
// address while accepting, so it is there even for a peer that has reset since).
task<unique_fd> accept_single(std::shared_ptr<listener_state> s, socket_address* peer = nullptr) {
  for (;;) {
    if (s->closed) closed_error();
    socklen_t len = socket_address::capacity();
    // Named: GCC 12 does not keep a temporary awaiter alive across the suspension.
    raw_op_awaiter aw(*s->l, "eddy: accept", op_code::accept, s->fd, peer ? peer->data() : nullptr, 0,
                      accept_flags);
    if (peer != nullptr) aw.op.aux = &len;
    const int r = co_await aw;
    if (r >= 0) {
      if (peer != nullptr) peer->resize(len);
      co_return unique_fd(r);
    }
    if (r == -EMFILE || r == -ENFILE) {
      co_await shed_connections(s);
      continue;
    }
    if (r == -ECONNABORTED || r == -EINTR || r == -EPROTO) continue;
    throw std::system_error(-r, std::system_category(), "eddy: accept");
  }
}

}  // namespace

listener_core::listener_core() noexcept = default;
listener_core::listener_core(listener_core&&) noexcept = default;
listener_core& listener_core::operator=(listener_core&& o) noexcept {
  if (this != &o) {
    listener_core dying(std::move(*this));
    s_ = std::move(o.s_);
  }
  return *this;
}

listener_core::listener_core(unique_fd fd, bool multishot)
    : s_(std::make_shared<listener_state>()) {
  s_->l = &loop::current();
  s_->multishot = multishot && detail::loop_io(*s_->l).caps().multishot_accept;
  s_->reserve = open_reserve();
  if (s_->reserve < 0)
    throw std::system_error(errno, std::system_category(), "eddy: listener reserve fd");
  s_->fd = fd.release();
}

listener_core::~listener_core() {
  if (!s_ || s_->fd < 0) return;
  listener_state& s = *s_;
  s.closed = true;
  s.wake_all();
  const int f = std::exchange(s.fd, -1);
  if (s.l->is_closed() || loop::current_or_null() != s.l) {
    // Dropped on another thread or loop, or after its loop closed: never touch
    // that loop's backend from here (docs/fd_ownership.md).
    close_fd_now(loop::current_or_null(), f);
    return;
  }
  detail::loop_io(*s.l).close_now(f);
  // A destructor cannot await the multishot op's final CQE, but loop::close must
  // not find it in flight: reap here (completions only schedule resumptions, so
  // this is safe from inside a task). The cancel is synchronous in the kernel for
  // a poll-armed accept; the bound is a safety net.
  for (int i = 0; i < 1000 && s.armed(); ++i) detail::loop_io(*s.l).wait(1'000'000, 64);
}

task<unique_fd> listener_core::accept_fd() {
  if (!s_ || s_->fd < 0) closed_error();
  return s_->multishot ? accept_multishot(s_) : accept_single(s_);
}

task<accepted_fd> listener_core::accept_fd_with_peer() {
  if (!s_ || s_->fd < 0) closed_error();
  std::shared_ptr<listener_state> s = s_;
  if (!s->multishot) {
    accepted_fd a;
    a.fd = co_await accept_single(s, &a.peer);
    co_return a;
  }
  // Multishot accept has one address buffer for every completion, so it is armed
  // without one, and the address is read at once with getpeername. A peer that
  // reset before that has no address left to read (ENOTCONN): its connection is
  // closed and skipped, as accept() skips ECONNABORTED; it was dead anyway.
  for (;;) {
    unique_fd fd = co_await accept_multishot(s);
    accepted_fd a;
    socklen_t len = socket_address::capacity();
    if (::getpeername(fd.get(), a.peer.data(), &len) == 0) {
      a.peer.resize(len);
      a.fd = std::move(fd);
      co_return a;
    }
    if (errno != ENOTCONN && errno != EINVAL)
      throw std::system_error(errno, std::system_category(), "eddy: accept: getpeername");
  }
}

task<void> listener_core::close() {
  std::shared_ptr<listener_state> s = s_;
  if (!s) co_return;
  if (s->fd >= 0) {
    s->closed = true;
    s->wake_all();
    const int f = std::exchange(s->fd, -1);
    co_await eddy::close(f);
  }
  // Also on a second call after a cancelled one: the accept op may still be in
  // flight, and the connections it queued are still open.
  while (s->armed()) co_await s->final_seen.wait();
  for (int r : s->ready) ::close(r);
  s->ready.clear();
}

int listener_core::fd() const noexcept {
  return s_ ? s_->fd : -1;
}
std::uint64_t listener_core::shed_connections() const noexcept {
  return s_ ? s_->shed : 0;
}

}  // namespace eddy::detail
