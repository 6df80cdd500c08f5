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
// Ops must be on non-blocking fds. An fd must be closed through eddy (close op or
// close_now) so its waiters and state go with it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "io/backend.hpp"
#include "io/backend.hpp"

namespace eddy::detail {

/// Readiness bits a mechanism reports to the engine.
enum : unsigned {
  ready_read = 1,    // data, a connection to accept, or EOF
  ready_write = 2,   // room to write, or a finished connect
  ready_error = 4,   // an error is pending on the fd (both directions wake)
  ready_hangup = 8,  // the peer closed both directions
  ready_rdhup = 16,  // the peer closed its writing side (stream EOF follows the data)
};

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
  /// Starts watching fd for both directions. 0 or -errno. Called once per fd
  /// lifetime (until the engine's close).
  virtual int watch(int fd) noexcept = 0;
  /// fd is about to be closed by the engine: drop what the mechanism keeps for
  /// it. (epoll keeps nothing: closing the fd removes it from the set.)
  virtual void forget(int fd) noexcept = 0;
  /// Level-triggered mechanisms only: fd now has waiters in `dirs` (ready_read,
  /// ready_write; ready_rdhup when a poll op asks for POLLRDHUP).
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
  int close_fd(int fd) noexcept;
  /// The mechanism saw `events` (ready_* bits) on fd.
  void ready(int fd, unsigned events) noexcept;
  /// Runs the first attempt of multishot ops armed since the last call (their
  /// completions are never delivered from inside submit). Returns how many
  /// completions it delivered.
  unsigned run_deferred() noexcept;
  bool has_deferred() const noexcept { return !deferred_.empty(); }
  /// The directions (ready_read, ready_write, ready_rdhup) in which ops wait on fd
  /// now; 0 if none or fd is not watched. For level-triggered mechanisms.
  unsigned waiting(int fd) const noexcept;
  std::size_t in_flight() const noexcept { return in_flight_; }
  buffer_ring* recv_buffers() noexcept { return &blocks_; }

 private:
  struct op_list {
    io_op* head = nullptr;
    io_op* tail = nullptr;
    bool empty() const noexcept { return head == nullptr; }
    void push(io_op* op) noexcept;
    void remove(io_op* op) noexcept;
  };
  enum dir : std::uint8_t { dir_in, dir_out, dir_poll, dir_none };
  struct fd_state {
    op_list lists[3];  // dir_in, dir_out, dir_poll
    bool watched = false;
    bool readable = true;  // may be ready: try before waiting
    bool writable = true;
    bool read_closed = false;  // RDHUP, HUP or ERR seen: stays readable
  };

  static dir direction(const io_op& op) noexcept;
  fd_state& state(int fd);
  void finish(io_op& op, int res) noexcept;
  bool enqueue(fd_state& st, op_list& l, io_op& op);
  void drain(fd_state& st, op_list& l, bool& ready_flag) noexcept;
  // recv_multi's reads while the fd may be readable; returns completions delivered.
  unsigned receive_multi(fd_state& st, io_op& op) noexcept;
  bool submit_poll(fd_state& st, io_op& op);
  void complete_polls(fd_state& st, unsigned events) noexcept;

  static unsigned waiting(const fd_state& st) noexcept;

  readiness_mechanism& mech_;
  bool level_ = false;
  std::vector<fd_state> fds_;
  std::vector<int> deferred_;  // fds with a newly armed recv_multi to try
  block_pool blocks_;
  std::size_t in_flight_ = 0;
};

/// The system call behind a one-shot op, made once: bytes, fd or 0; -EAGAIN when
/// it would block (connect: EINPROGRESS too); -errno otherwise (EINTR retried).
int attempt_op(io_op& op) noexcept;

}  // namespace eddy::detail
