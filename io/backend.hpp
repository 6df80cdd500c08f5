// The backend contract (DESIGN.md §4): completion-style, narrow, the same for every
// backend. The loop and eddy's awaitables talk to a backend only through this.
//
//  submit(op)   start an operation. Returns true if it completed inline (op.res is
//               set and `complete` is NOT called: the caller goes on without
//               suspending); false if the backend now owns it and will call
//               op.complete exactly once, on the loop thread.
//  cancel(op)   ask an owned operation to stop. It still completes exactly once
//               (-ECANCELED, or its real result if it won the race). Never frees.
//  reap(n)      submit what is queued and deliver up to n completions; no blocking.
//  wait(t, n)   submit, then block until a completion, wake() or t ns (-1: no
//               limit), then deliver up to n completions.
//  wake()       the only thread-safe call: make a blocked wait() return.
//  close_now(fd) close without waiting, cancelling what is in flight on fd.
//  caps()       what this backend and kernel can do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <eddy/io/detail/io_op.hpp>
#include <eddy/runtime/loop.hpp>

namespace eddy::detail {

struct backend_caps {
  bool ns_timeouts = false;        // wait() honours sub-millisecond timeouts
  bool multishot_accept = false;
  bool multishot_recv = false;
  bool provided_buffers = false;
  bool cancel_by_fd = false;
  bool single_issuer = false;
  bool defer_taskrun = false;
};

/// Receive buffers the kernel picks from when data arrives (io_uring's provided
/// buffer ring, 5.19+), so a connection waiting for data holds none. Every buffer a
/// recv_multi completion names must come back through recycle(), on the loop
/// thread, before the backend is destroyed.
class buffer_ring {
 public:
  virtual ~buffer_ring() = default;
  virtual std::byte* data(unsigned id) noexcept = 0;
  virtual std::size_t buffer_size() const noexcept = 0;
  virtual void recycle(unsigned id) noexcept = 0;
  /// Buffers the kernel can still pick.
  virtual std::size_t available() const noexcept = 0;
};

/// Completes `op` inline (submit returns this: true, and `complete` is not called).
inline bool complete_inline(io_op& op, int res) noexcept {
  op.res = res;
  op.state = op_state::done;
  return true;
}

class backend {
 public:
  virtual ~backend() = default;
  virtual backend_kind kind() const noexcept = 0;
  virtual const backend_caps& caps() const noexcept = 0;
  virtual bool submit(io_op& op) = 0;
  virtual void cancel(io_op& op) noexcept = 0;
  virtual unsigned reap(unsigned budget) = 0;
  virtual unsigned wait(std::int64_t timeout_ns, unsigned budget) = 0;
  virtual void wake() noexcept = 0;
  /// Closes `fd` now, without waiting: operations in flight on it are cancelled
  /// first (they complete later with -ECANCELED, routed by op, never by fd number).
  /// For destructors, which cannot await.
  virtual void close_now(int fd) noexcept = 0;
  /// Operations owned by the backend (not counting its own wakeup read).
  virtual std::size_t in_flight() const noexcept = 0;
  /// Called on the loop thread before the loop first runs (io_uring enables its
  /// ring there, making that thread the single issuer).
  virtual void attach_thread() {}
  /// The provided-buffer ring for recv_multi (made on first use), or nullptr where
  /// the backend has none (epoll; io_uring without caps().provided_buffers).
  virtual buffer_ring* recv_buffers() { return nullptr; }
};

/// Chooses and builds the backend for `opts` (EDDY_BACKEND when from_env);
/// `why` receives the reason for the choice. Throws std::system_error when the
/// requested backend cannot be built, or on a resource error (ENOMEM, EMFILE):
/// those are reported, never hidden behind a fallback.
std::unique_ptr<backend> make_backend(const loop_options& opts, std::string& why);

std::unique_ptr<backend> make_uring_backend(const loop_options& opts);
std::unique_ptr<backend> make_epoll_backend(const loop_options& opts);

/// Probes whether io_uring can be used here; on false, `why` says why.
bool uring_usable(std::string& why);

}  // namespace eddy::detail
