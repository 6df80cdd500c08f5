// The readiness engine: eddy's completion contract (io/backend.hpp) over a kernel
// that reports readiness, as Boost.Asio's reactor and tokio's I/O driver do. The
// epoll backend is a thin layer over it, and so will the libuv backend be; each
// plugs in a readiness_mechanism and feeds events back through ready().
//
// The rule: no system call a hand-written epoll loop would not make.
//  - submit(op) tries the system call at once when the fd may be ready (nothing
//    queued before it in that direction, and no EAGAIN seen since the last event):
//    on a busy socket most reads and writes complete right there. When the fd is
//    known not to be ready the op queues without a probe.
//  - An fd is watched once, for both directions, the first time an op has to wait
//    (epoll: one EPOLL_CTL_ADD, edge-triggered; never re-armed per operation).
//  - On an event the fd's queued ops of that direction are retried in order, at
//    once, until one sees EAGAIN. Every event of one wait is handled before the
//    wait returns.
//  - Readiness is tracked per fd and direction: "may be ready" is set by an event
//    and cleared by EAGAIN, or by a short read on a stream socket (recv_multi):
//    the kernel's receive queue was empty when recv returned, and anything that
//    arrives later raises a new edge (tokio clears readiness on short reads for
//    the same reason). A peer's FIN or an error (RDHUP, HUP, ERR) is sticky: the
//    fd stays readable until it is closed, so EOF is never missed.
//  - recv_multi (stream_socket::receive) reads into blocks of the engine's own
//    buffer pool only when data is there, so an idle connection holds none, and
//    stays armed across completions: no per-read queueing at all.
//  - poll ops complete from events; a probe (poll(fd, 0)) happens only when the
//    engine's state says the fd may be ready and cannot tell which way.
//
//  - A watch follows the file, not the number (docs/fd_ownership.md): each fd's
//    state carries a generation, bumped whenever the engine lets go of the fd, and
//    the mechanism tags its registration with it, so an event of an old watch is
//    dropped, never delivered to whatever file has the number now; the watch ends
//    (forget: EPOLL_CTL_DEL, uv_close) before the fd is closed; an add that finds
//    a registration already there (EEXIST: a dup of the same file) modifies it and
//    probes the fd at once, since no new edge may ever come; and a close made on
//    another thread or loop is handed to the engine that watches the fd
//    (fd_registry.hpp).
//  - An fd eddy does not own (poll_fd_unowned: eddyloop's waits on Python's
//    sockets) may be closed and its number reused between polls without eddy
//    knowing, so nothing about it is trusted across waits: the first poll that
//    waits on it registers it afresh (watch_unowned: epoll's MOD, or ADD for a
//    new file), and when the last one ends the watch ends too, left in the
//    kernel under a dead generation where the mechanism can re-target it
//    cheaply (epoll), forgotten otherwise (libuv). One system call per wait
//    where a dup, ADD, DEL and close were four.
//
// Ops must be on non-blocking fds. An fd must be closed through eddy (close op,
// close_now, unique_fd) so its waiters and state go with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <eddy/detail/intrusive_list.hpp>

#include "io/backend.hpp"
#include "io/readiness/fd_table.hpp"

namespace eddy::detail {

/// Readiness bits a mechanism reports to the engine.
enum : unsigned {
  ready_read = 1,    // data, a connection to accept, or EOF
  ready_write = 2,   // room to write, or a finished connect
  ready_error = 4,   // an error is pending on the fd (both directions wake)
  ready_hangup = 8,  // the peer closed both directions
  ready_rdhup = 16,  // the peer closed its writing side (stream EOF follows the data)
  ready_pri = 32,    // exceptional condition (POLLPRI: TCP urgent data, sysfs, ...)
};

/// watch() found a registration of the same file under this number already
/// (epoll's EEXIST) and took it over: the engine probes the fd at once.
inline constexpr int watch_took_over = 1;

/// What a backend plugs into the engine: "tell me when fd X is readable or
/// writable". Edge semantics: after watch(fd), the mechanism reports each change
/// towards readiness at least once, and the current state right after watch().
///
/// A level-triggered mechanism (libuv's uv_poll_t) reports a ready fd on every
/// wait, which would spin the loop on an fd nobody waits on. It overrides want():
/// the engine (built with `level_triggered`) then calls want(fd, dirs) whenever an
/// op starts waiting on fd, with the ready_read/ready_write directions that have
/// waiters now; the mechanism watches those only, and after delivering an event
/// narrows its interest again through readiness_engine::waiting(fd).
class readiness_mechanism {
 public:
  virtual ~readiness_mechanism() = default;
  /// Starts watching fd for both directions (and POLLPRI), tagging its events
  /// with `gen`, which the mechanism hands back to ready(). 0, watch_took_over, or
  /// -errno. Called once per watch (until forget).
  virtual int watch(int fd, std::uint32_t gen) noexcept = 0;
  /// Starts a watch for unowned polls (poll_fd_unowned): fd may name another
  /// file than at its last watch, which its owner closed without telling eddy.
  /// `maybe_registered`: an earlier unowned watch of this number was left in the
  /// kernel (keeps_unowned). The kernel must report the current state after this
  /// as after watch(). Default: watch().
  virtual int watch_unowned(int fd, std::uint32_t gen, bool maybe_registered) noexcept {
    (void)maybe_registered;
    return watch(fd, gen);
  }
  /// True if an unowned watch may be left registered when its last poll ends
  /// (its events then carry an old generation and are dropped), because
  /// watch_unowned re-targets it cheaply (epoll: MOD). False: forget() it.
  virtual bool keeps_unowned() const noexcept { return false; }
  /// fd is about to be closed: end its watch now (epoll: EPOLL_CTL_DEL, which
  /// close() alone does not do while another fd or process holds the file).
  virtual void forget(int fd) noexcept = 0;
  /// Thread-safe: make the loop's wait return soon (a close was handed to this
  /// engine from another thread; the backend then calls run_remote_closes).
  virtual void wake_owner() noexcept = 0;
  /// Level-triggered mechanisms only: fd now has waiters in `dirs` (ready_read,
  /// ready_write; ready_rdhup when a poll op asks for POLLRDHUP; ready_pri).
  virtual void want(int fd, unsigned dirs) noexcept {
    (void)fd;
    (void)dirs;
  }
};

class readiness_engine {
 public:
  explicit readiness_engine(readiness_mechanism& m, bool level_triggered = false)
      : mech_(m), level_(level_triggered) {}
  ~readiness_engine();
  readiness_engine(const readiness_engine&) = delete;
  readiness_engine& operator=(const readiness_engine&) = delete;

  bool submit(io_op& op);
  void cancel(io_op& op) noexcept;
  /// Cancels every op on fd, forgets it, closes it. 0 or -errno from close().
  /// If another engine watches fd, the close is handed to it (returns 0).
  int close_fd(int fd) noexcept;
  /// The mechanism saw `events` (ready_* bits) on fd's watch of generation `gen`;
  /// dropped if that watch has ended since.
  void ready(int fd, std::uint32_t gen, unsigned events) noexcept;
  /// Any thread (through the registry): close fd on this engine's thread soon.
  /// False if the engine has retired (the caller then closes fd itself).
  bool queue_remote_close(int fd) noexcept;
  /// Loop thread: closes what other threads handed over. Cheap when nothing was.
  void run_remote_closes() noexcept {
    if (remote_pending_.load(std::memory_order_acquire)) take_remote_closes();
  }
  /// Ends every watch in the registry and closes what was handed over; after
  /// this no close is handed here. Call first in the backend's destructor, while
  /// its wakeup still works. Idempotent.
  void retire() noexcept;
  /// Runs the first attempt of multishot ops armed since the last call (their
  /// completions are never delivered from inside submit). Returns how many
  /// completions it delivered.
  unsigned run_deferred() noexcept;
  bool has_deferred() const noexcept { return !deferred_.empty(); }
  /// The directions (ready_read, ready_write, ready_rdhup) in which ops wait on fd
  /// now; 0 if none or fd is not watched. For level-triggered mechanisms.
  unsigned waiting(int fd) const noexcept;
  std::size_t in_flight() const noexcept { return in_flight_.total(); }
  const op_census& in_flight_ops() const noexcept { return in_flight_; }
  buffer_ring* recv_buffers() noexcept { return &blocks_; }
  void trim_buffers(std::size_t keep) noexcept { blocks_.trim(keep); }

 private:
  struct op_links {
    static io_op*& next(io_op* o) noexcept { return o->link_next; }
    static io_op*& prev(io_op* o) noexcept { return o->link_prev; }
  };
  using op_list = intrusive_list<io_op, op_links>;
  enum dir : std::uint8_t { dir_in, dir_out, dir_poll, dir_none };
  struct fd_state {
    op_list lists[3];  // dir_in, dir_out, dir_poll
    std::uint32_t gen = 0;  // bumped each time a watch ends; tags the mechanism's events
    bool watched = false;
    bool readable = true;  // may be ready: try before waiting
    bool writable = true;
    bool read_closed = false;  // RDHUP, HUP or ERR seen: stays readable
    // The watch serves unowned polls only (poll_fd_unowned): it ends when the
    // last of them does, and is not in the fd registry (eddy does not close fd).
    bool unowned = false;
    // An ended unowned watch may still be registered in the kernel, for this
    // file or one since closed (keeps_unowned): the next watch re-targets it.
    bool lingering = false;
  };

  static dir direction(const io_op& op) noexcept;
  fd_state& state(int fd);
  void finish(io_op& op, int res) noexcept;
  // Queues op on fd's list d (fd is op.fd, or a splice's output), watching fd
  // first if this is its first wait. Returns false, or completes inline on error.
  bool enqueue(int fd, dir d, io_op& op);
  void drain(int fd, fd_state& st, op_list& l, bool& ready_flag) noexcept;
  // A splice that saw EAGAIN: which side to wait on (its input's read list or its
  // output's write list), found with one poll(2) of both fds.
  dir splice_side(const io_op& op) noexcept;
  void end_watch(int fd, fd_state& st) noexcept;
  void take_remote_closes() noexcept;
  void probe(int fd) noexcept;
  // recv_multi's reads while the fd may be readable; returns completions delivered.
  unsigned receive_multi(fd_state& st, io_op& op) noexcept;
  bool submit_poll(fd_state& st, io_op& op);
  bool submit_unowned_poll(fd_state& st, io_op& op);
  // The last unowned poll on fd ended: end its watch (or leave it lingering).
  void end_unowned_watch(int fd, fd_state& st) noexcept;
  void end_unowned_if_idle(int fd, fd_state& st) noexcept {
    if (st.unowned && st.lists[dir_in].empty() && st.lists[dir_out].empty() && st.lists[dir_poll].empty())
      end_unowned_watch(fd, st);
  }
  void complete_polls(fd_state& st, unsigned events) noexcept;

  static unsigned waiting(const fd_state& st) noexcept;

  readiness_mechanism& mech_;
  bool level_ = false;
  fd_table<fd_state> fds_;
  // fds to try before the loop blocks: a newly armed recv_multi, or a watch that
  // took over an existing registration (EEXIST), with the generation it was for.
  struct deferred_fd {
    int fd;
    std::uint32_t gen;
  };
  std::vector<deferred_fd> deferred_;
  block_pool blocks_;
  op_census in_flight_;
  std::atomic<bool> remote_pending_{false};
  std::mutex remote_mu_;
  std::vector<int> remote_closes_;  // under remote_mu_
  bool retired_ = false;            // under the registry lock
};

/// The system call behind a one-shot op, made once: bytes, fd or 0; -EAGAIN when
/// it would block (connect: EINPROGRESS too); -errno otherwise (EINTR retried).
int attempt_op(io_op& op) noexcept;

}  // namespace eddy::detail
