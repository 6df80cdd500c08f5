// The libuv backend: the readiness engine (io/readiness/) over libuv's uv_poll_t,
// on a uv_loop_t of its own or attached to a host program's.
//
//  - Readiness: one uv_poll_t per fd, made the first time an op on it has to wait.
//    uv_poll_t is level-triggered, so its interest is the directions that have
//    waiters (the engine's want() widens it when an op starts waiting; after each
//    event the backend narrows it to readiness_engine::waiting(fd)); an fd whose
//    ops are all satisfied is not watched and cannot spin the loop. A receive()
//    stays armed, so a busy connection keeps one interest and libuv makes no
//    epoll_ctl per read.
//  - Own loop: wait() is uv_run(UV_RUN_ONCE) with a uv_timer_t for eddy's next
//    deadline (rounded up to libuv's millisecond); reap() is uv_run(UV_RUN_NOWAIT).
//    Cross-thread wakeup is a uv_async_t; its callback consumes the wakeup_token.
//  - Host loop (backend_config::uv_host_loop): the host calls uv_run. A uv_prepare_t
//    (before libuv blocks) and a uv_check_t (after its poll) run one turn of eddy's
//    loop through host_driver::step; a uv_idle_t keeps libuv from blocking while
//    eddy has ready work, and a uv_timer_t wakes it for eddy's next deadline. The
//    async is ref'd only while eddy has live tasks, so an idle eddy never keeps the
//    host's uv_run from returning, and a task awaiting another thread does.
//  - Closing: every handle is closed with uv_close; the backend runs the loop until
//    their close callbacks have run (an attached backend: one UV_RUN_NOWAIT turn of
//    the host's loop), so uv_loop_close on the host succeeds afterwards.
#include <uv.h>

#include <poll.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "io/backend.hpp"
#include "io/readiness/fd_table.hpp"
#include "io/readiness/readiness_backend.hpp"
#include "runtime/log.hpp"

namespace eddy::detail {
namespace {

[[noreturn]] void uv_fail(int r, const char* what) {
  throw std::system_error(-r, std::system_category(), std::string("eddy: ") + what);
}

class uv_backend final : public readiness_backend {
 public:
  explicit uv_backend(const backend_config& cfg) : readiness_backend(/*level_triggered=*/true) {
    if (cfg.uv_host_loop != nullptr) {
      loop_ = static_cast<uv_loop_t*>(cfg.uv_host_loop);
      hosted_ = true;
    } else {
      own_ = std::make_unique<uv_loop_t>();
      if (const int r = uv_loop_init(own_.get()); r != 0) {
        delete hs_;
        uv_fail(r, "uv_loop_init");
      }
      loop_ = own_.get();
    }
    if (const int r = uv_async_init(loop_, &hs_->async, &on_async); r != 0) {
      if (own_) uv_loop_close(own_.get());
      delete hs_;
      uv_fail(r, "uv_async_init");
    }
    hs_->async.data = this;
    uv_timer_init(loop_, &hs_->timer);
    hs_->timer.data = this;
    hs_->open = 2;
    if (hosted_) {
      uv_unref(reinterpret_cast<uv_handle_t*>(&hs_->async));
      uv_prepare_init(loop_, &hs_->prepare);
      uv_check_init(loop_, &hs_->check);
      uv_idle_init(loop_, &hs_->idle);
      hs_->prepare.data = hs_->check.data = hs_->idle.data = this;
      hs_->open += 3;
    }
    caps_.multishot_recv = true;
  }

  ~uv_backend() override {
    engine_.retire();  // while the async still wakes us
    polls_.for_each([this](int fd, poll_slot* s) {
      if (s != nullptr) forget(fd);
    });
    close_handle(&hs_->async);
    close_handle(&hs_->timer);
    if (hosted_) {
      close_handle(&hs_->prepare);
      close_handle(&hs_->check);
      close_handle(&hs_->idle);
    }
    // Run the loop until every close callback has run, so the host can
    // uv_loop_close right after. Not from inside the host's own uv_run (libuv's
    // uv_run is not reentrant): the callbacks then run in that uv_run's closing
    // phase, and the last one frees the handle set.
    if (!inside_host_run())
      while (hs_->open != 0 || hs_->closing_polls != 0) uv_run(loop_, UV_RUN_NOWAIT);
    hs_->orphaned = true;
    hs_->release_if_done();
    if (own_) {
      const int r = uv_loop_close(own_.get());
      if (r != 0) log_debug("eddy: uv_loop_close: %s", uv_strerror(r));
    }
  }

  backend_kind kind() const noexcept override { return backend_kind::libuv; }
  const backend_caps& caps() const noexcept override { return caps_; }
  bool hosted() const noexcept override { return hosted_; }

  bool completions_pending() noexcept override {
    if (engine_.has_deferred()) return true;
    pollfd p{uv_backend_fd(loop_), POLLIN, 0};  // libuv's epoll fd: readable while events wait
    return ::poll(&p, 1, 0) > 0;
  }

  unsigned reap(unsigned) override { return turn(0); }
  unsigned wait(std::int64_t timeout_ns, unsigned) override { return turn(timeout_ns); }

  bool wake() noexcept override {
    if (!token_.claim()) return false;
    uv_async_send(&hs_->async);
    return true;
  }

  void poke() noexcept override {
    if (hosted_) uv_idle_start(&hs_->idle, [](uv_idle_t*) {});
  }

  void drive(host_driver d) override {
    if (!hosted_) return;
    driver_ = d;
    uv_prepare_start(&hs_->prepare, &on_prepare);
    uv_unref(reinterpret_cast<uv_handle_t*>(&hs_->prepare));
    uv_check_start(&hs_->check, &on_check);
    uv_unref(reinterpret_cast<uv_handle_t*>(&hs_->check));
  }

 private:
  struct handle_set;
  // One per watched fd. The handle comes first, so a callback's handle is its
  // slot; h.data is the backend while the poll is open and the handle set once it
  // is closing (its close callback may run after the backend is gone), and the fd
  // is libuv's (uv_fileno): an idle connection pays for the handle and 8 bytes.
  struct poll_slot {
    uv_poll_t h;
    std::uint32_t gen;  // the engine's generation of this watch
    int events;         // the uv_poll_start interest now (0: stopped)
  };
  static_assert(std::is_standard_layout_v<poll_slot>, "a slot is reached from its handle");
  static poll_slot* slot_of(uv_poll_t* h) noexcept { return reinterpret_cast<poll_slot*>(h); }

  template <class H>
  void close_handle(H* h) noexcept {
    h->data = hs_;  // no callback but the close one from here on
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* hh) {
      auto* set = static_cast<handle_set*>(hh->data);
      --set->open;
      set->release_if_done();
    });
  }

  // --- readiness_mechanism -------------------------------------------------------
  // libuv itself takes EEXIST over with EPOLL_CTL_MOD, and uv_poll_t is level-
  // triggered, so a reused registration reports the fd's state anyway: no probe.
  int watch(int fd, std::uint32_t gen) noexcept override {
    auto* s = new (std::nothrow) poll_slot{};
    if (s == nullptr) return -ENOMEM;
    if (const int r = uv_poll_init(loop_, &s->h, fd); r != 0) {
      delete s;  // uv_poll_init registers nothing on failure
      return r;
    }
    s->h.data = this;
    s->gen = gen;
    try {
      polls_.get(fd) = s;
    } catch (const std::bad_alloc&) {
      s->h.data = hs_;
      ++hs_->closing_polls;
      uv_close(reinterpret_cast<uv_handle_t*>(&s->h), &on_slot_closed);
      return -ENOMEM;
    }
    return 0;
  }

  void forget(int fd) noexcept override {
    poll_slot** p = polls_.find(fd);
    if (p == nullptr || *p == nullptr) return;
    poll_slot* s = std::exchange(*p, nullptr);
    ++hs_->closing_polls;
    // uv_close stops the poll now: libuv's EPOLL_CTL_DEL, and the fd's events
    // still in this wait's batch are invalidated. The slot is freed in its close
    // callback, after the fd is closed.
    s->h.data = hs_;
    uv_close(reinterpret_cast<uv_handle_t*>(&s->h), &on_slot_closed);
  }

  static void on_slot_closed(uv_handle_t* h) {
    auto* set = static_cast<handle_set*>(h->data);
    delete slot_of(reinterpret_cast<uv_poll_t*>(h));
    --set->closing_polls;
    set->release_if_done();
  }

  void wake_owner() noexcept override { (void)wake(); }

  void want(int fd, unsigned dirs) noexcept override {
    poll_slot** p = polls_.find(fd);
    if (p != nullptr && *p != nullptr) set_interest(**p, dirs);
  }

  static int uv_events(unsigned dirs) noexcept {
    int ev = 0;
    if (dirs & ready_read) ev |= UV_READABLE | UV_DISCONNECT;
    if (dirs & ready_write) ev |= UV_WRITABLE;
    if (dirs & ready_rdhup) ev |= UV_DISCONNECT;
    if (dirs & ready_pri) ev |= UV_PRIORITIZED;
    return ev;
  }

  void set_interest(poll_slot& s, unsigned dirs) noexcept {
    const int ev = uv_events(dirs);
    if (ev == s.events) return;
    s.events = ev;
    if (ev == 0)
      uv_poll_stop(&s.h);
    else
      uv_poll_start(&s.h, ev, &on_poll);
  }

  static void on_poll(uv_poll_t* h, int status, int events) {
    poll_slot* s = slot_of(h);
    uv_backend& self = *static_cast<uv_backend*>(h->data);
    uv_os_fd_t fd = -1;
    (void)uv_fileno(reinterpret_cast<const uv_handle_t*>(h), &fd);  // open: cannot fail
    unsigned bits = 0;
    if (status < 0) {
      bits = ready_error | ready_read | ready_write;
    } else {
      if (events & UV_READABLE) bits |= ready_read;
      if (events & UV_WRITABLE) bits |= ready_write;
      if (events & UV_DISCONNECT) bits |= ready_rdhup;
      if (events & UV_PRIORITIZED) bits |= ready_pri;
    }
    self.engine_.ready(fd, s->gen, bits);
    ++self.delivered_;
    // Narrow the interest to what still waits. The completions may have closed fd
    // (its slot is gone) or closed and reopened it (a new slot, already right).
    poll_slot** p = self.polls_.find(fd);
    if (p != nullptr && *p == s) self.set_interest(*s, self.engine_.waiting(fd));
  }

  static void on_async(uv_async_t* h) {
    auto& self = *static_cast<uv_backend*>(h->data);
    self.token_.consumed();
    self.engine_.run_remote_closes();
  }

  // --- the own loop's wait ---------------------------------------------------------
  unsigned turn(std::int64_t timeout_ns) {
    delivered_ = 0;
    engine_.run_remote_closes();
    if (engine_.has_deferred()) {
      delivered_ += engine_.run_deferred();
      if (delivered_ != 0) timeout_ns = 0;
    }
    // Attached, this is only reached from the eddy loop's close(). Never run the
    // host's loop from inside it: close() then only cancels and runs eddy's own
    // work (the readiness engine cancels synchronously).
    if (inside_host_run()) return delivered_;
    if (timeout_ns == 0) {
      uv_run(loop_, UV_RUN_NOWAIT);
    } else {
      if (timeout_ns > 0) {
        // The timer counts from libuv's cached time. If it falls due in uv_run's
        // own timer phase, before the poll (this thread was preempted between
        // here and there), the poll would find no timer and block for good:
        // uv_stop makes that poll non-blocking instead.
        uv_update_time(loop_);
        uv_timer_start(&hs_->timer, [](uv_timer_t* t) { uv_stop(t->loop); }, ms_ceil(timeout_ns), 0);
      }
      uv_run(loop_, UV_RUN_ONCE);
      if (timeout_ns > 0) uv_timer_stop(&hs_->timer);
    }
    return delivered_;
  }

  static std::uint64_t ms_ceil(std::int64_t ns) noexcept {
    return static_cast<std::uint64_t>((ns + 999'999) / 1'000'000);
  }

  // --- the host loop's handles -----------------------------------------------------
  void host_turn() noexcept {
    if (driver_.step == nullptr) return;
    ++in_callback_;
    const host_step st = driver_.step(driver_.ctx);
    std::int64_t next = st.next_ns;
    if (engine_.has_deferred() && engine_.run_deferred() != 0) next = 0;
    --in_callback_;
    if (st.live != async_ref_) {
      async_ref_ = st.live;
      if (st.live)
        uv_ref(reinterpret_cast<uv_handle_t*>(&hs_->async));
      else
        uv_unref(reinterpret_cast<uv_handle_t*>(&hs_->async));
    }
    if (next == 0) {
      uv_idle_start(&hs_->idle, [](uv_idle_t*) {});
    } else {
      uv_idle_stop(&hs_->idle);
    }
    if (next > 0) {
      uv_update_time(loop_);
      uv_timer_start(&hs_->timer, [](uv_timer_t*) {}, ms_ceil(next), 0);
    } else {
      uv_timer_stop(&hs_->timer);
    }
  }

  // Hosted: true while the host's uv_run is certainly running on this thread: in
  // one of our callbacks, or in its I/O phase (between our prepare and our
  // check), where a host callback that closes the eddy loop runs. libuv says
  // nothing public about the other phases (timers, idle, closing), so a close
  // from a host timer callback is not detected (loop_options::uv_loop says to
  // close outside uv_run or from an I/O callback).
  bool inside_host_run() const noexcept { return hosted_ && (in_callback_ != 0 || in_host_poll_); }

  static void on_prepare(uv_prepare_t* h) {
    auto* self = static_cast<uv_backend*>(h->data);
    self->host_turn();
    self->in_host_poll_ = true;
  }
  static void on_check(uv_check_t* h) {
    auto* self = static_cast<uv_backend*>(h->data);
    self->in_host_poll_ = false;
    self->host_turn();
  }

  std::unique_ptr<uv_loop_t> own_;
  uv_loop_t* loop_ = nullptr;
  bool hosted_ = false;
  // The handles live apart from the backend: closed from inside the host's
  // uv_run, their close callbacks run after the backend is gone, and free this.
  struct handle_set {
    uv_async_t async{};
    uv_timer_t timer{};
    uv_prepare_t prepare{};
    uv_check_t check{};
    uv_idle_t idle{};
    int open = 0;           // of the five above, not yet closed
    int closing_polls = 0;  // poll slots whose close callback has not run
    bool orphaned = false;  // the backend is gone: the last close callback frees this
    void release_if_done() noexcept {
      if (orphaned && open == 0 && closing_polls == 0) delete this;
    }
  };
  handle_set* hs_ = new handle_set;
  int in_callback_ = 0;
  bool in_host_poll_ = false;  // hosted: the host's uv_run is in its I/O phase
  bool async_ref_ = false;  // hosted: the async is ref'd (eddy has live tasks)
  unsigned delivered_ = 0;
  host_driver driver_;
  fd_table<poll_slot*> polls_;  // by fd
  wakeup_token token_;
  backend_caps caps_;
};

}  // namespace

std::unique_ptr<backend> make_uv_backend(const backend_config& cfg) {
  return std::make_unique<uv_backend>(cfg);
}

bool uv_usable(std::string& why) {
  uv_loop_t l;
  const int r = uv_loop_init(&l);
  if (r == UV_ENOMEM || r == UV_EMFILE || r == UV_ENFILE)
    throw std::system_error(-r, std::system_category(),
                            "eddy: uv_loop_init probe (a resource error, not a reason to fall back)");
  if (r != 0) {
    why = std::string("uv_loop_init: ") + uv_err_name(r) + " (" + uv_strerror(r) +
          "; libuv on Linux needs epoll_create1 or epoll_create)";
    return false;
  }
  uv_loop_close(&l);
  return true;
}

std::string uv_version() { return uv_version_string(); }

}  // namespace eddy::detail
