// The backend contract (DESIGN.md §4): completion-style, narrow, the same for every
// backend. The loop and eddy's awaitables talk to a backend only through this, and
// this file includes nothing of the runtime: the contract sits below it
// (docs/layers.md).
//
//  submit(op)   start an operation. Returns true if it completed inline (op.res is
//               set and `complete` is NOT called: the caller goes on without
//               suspending); false if the backend now owns it and will call
//               op.complete, on the loop thread, once per completion (more than
//               once only for multishot ops, with op.more set on all but the last).
//  cancel(op)   ask an owned operation to stop. It still completes (-ECANCELED, or
//               its real result if it won the race). Never frees.
//  reap(n)      submit what is queued and deliver up to n completions; no blocking.
//  wait(t, n)   submit, then block until a completion, wake() or t ns (-1: no
//               limit), then deliver up to n completions.
//  wake()       the only thread-safe call: make a blocked wait() return. Coalesced
//               (see wakeup_token): at most one token is outstanding.
//  close_now(fd) close without waiting, cancelling what is in flight on fd.
//  caps()       what this backend and kernel can do.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <eddy/io/backend_kind.hpp>
#include <eddy/io/detail/io_op.hpp>

namespace eddy::detail {

/// The operations a backend owns, in total and by kind (loop_metrics::in_flight).
/// The backend counts an op in when it takes it (submit returned false) and out
/// when it delivers the op's final completion: two increments on the loop thread.
class op_census {
 public:
  void in(const io_op& op) noexcept {
    ++total_;
    ++by_kind_[static_cast<std::size_t>(op.code)];
  }
  void out(const io_op& op) noexcept {
    --total_;
    --by_kind_[static_cast<std::size_t>(op.code)];
  }
  std::size_t total() const noexcept { return total_; }
  std::size_t of(op_code c) const noexcept { return by_kind_[static_cast<std::size_t>(c)]; }

 private:
  std::size_t total_ = 0;
  std::size_t by_kind_[op_code_count] = {};
};

struct backend_caps {
  bool ns_timeouts = false;        // wait() honours sub-millisecond timeouts
  bool multishot_accept = false;
  bool multishot_recv = false;     // recv_multi works (recv_buffers() is not null)
  bool provided_buffers = false;   // the kernel picks receive buffers (io_uring)
  bool cancel_by_fd = false;
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool batched_submission = false;  // io_capabilities::batched_submission
  bool poll_holds_file = false;     // io_capabilities::poll_holds_file
  /// openat, statx, fsync, renameat, unlinkat, mkdirat (and read/write/close on a
  /// regular file) run without blocking the loop thread (io_uring). Elsewhere
  /// submit() refuses them with -EOPNOTSUPP and eddy::fs uses the blocking pool.
  bool file_ops = false;
};

/// What a backend is built with: the part of loop_options backends read.
struct backend_config {
  unsigned uring_entries = 256;
  unsigned uring_cq_entries = 0;
  /// io_uring: use only what Linux 5.11 offers (loop_options::uring_features).
  bool uring_baseline = false;
  /// io_uring's provided-buffer ring (0: the backend's default, by kernel feature).
  unsigned uring_buffers = 0;
  std::size_t uring_buffer_size = 0;
  /// Use incrementally consumed buffer rings where the kernel has them (6.12);
  /// false forces the older whole-buffer ring (tests run both).
  bool uring_incremental = true;
  /// Most bytes one receive completion carries (loop_options::recv_limit).
  std::size_t recv_limit = 256 * 1024;
  /// io_uring: sends of at least this many bytes go zero-copy (0 = never).
  std::size_t send_zerocopy_min = 0;
  /// A host program's uv_loop_t* (libuv only): the backend attaches to it instead of
  /// owning a loop; see host_driver.
  void* uv_host_loop = nullptr;
};

/// How a backend that lives in a host program's event loop runs eddy's loop (libuv
/// attached to a host's uv_loop_t): the host calls uv_run, and the backend calls
/// step() from its handles (prepare, check, a timer, the wakeup async) on the host's
/// thread. step() runs one non-blocking turn of eddy's loop.
struct host_step {
  std::int64_t next_ns = -1;  // until eddy's next deadline: 0 if work is ready, -1 if none
  bool live = false;          // eddy has live tasks: the host's uv_run should not return
};
struct host_driver {
  host_step (*step)(void* ctx) noexcept = nullptr;
  void* ctx = nullptr;
};

/// Receive buffers a backend fills when data arrives (io_uring's provided buffer
/// ring, 5.19+; a pool of blocks in the readiness engine), so a connection waiting
/// for data holds none. Every buffer a recv_multi completion names must come back
/// through recycle(), on the loop thread, before the backend is destroyed.
class buffer_ring {
 public:
  virtual ~buffer_ring() = default;
  virtual std::byte* data(unsigned id) noexcept = 0;
  virtual std::size_t buffer_size() const noexcept = 0;
  virtual void recycle(unsigned id) noexcept = 0;
  /// Buffers the backend can still fill without growing.
  virtual std::size_t available() const noexcept = 0;
};

/// Receive blocks in user space: what io_uring's provided-buffer ring is, for the
/// readiness engine (epoll, libuv) and for the receiver's plain-recv fallbacks. One
/// pool class serves both (each loop's engine owns one; the receiver keeps one per
/// thread), so there is one allocator of receive memory to tune and to cap.
///
/// Blocks come in power-of-two classes from 16 KiB up to 4 MiB: a connection that
/// streams reads into large blocks (fewer system calls, fewer completions, one big
/// send in an echo), one of small messages into 16 KiB ones. A block is taken only
/// when data is there to read, so an idle connection holds none. At most
/// `max_bytes` are out at once, past which take() fails (-1) as an io_uring ring runs
/// dry; free blocks are kept for reuse up to `keep_bytes` per class, beyond which a
/// recycled block is freed, so the memory of a burst goes back.
/// (Defined in io/readiness/block_pool.cpp.)
class block_pool final : public buffer_ring {
 public:
  static constexpr std::size_t min_block = 16 * 1024;
  static constexpr std::size_t max_block = 4 * 1024 * 1024;
  static constexpr unsigned classes = 9;  // 16 KiB << 0..8

  explicit block_pool(std::size_t max_bytes = 64u << 20, std::size_t keep_bytes = 4u << 20) noexcept
      : max_bytes_(max_bytes), keep_bytes_(keep_bytes) {}
  ~block_pool() override;
  block_pool(const block_pool&) = delete;
  block_pool& operator=(const block_pool&) = delete;

  /// A free block of at least `want` bytes (rounded up to a class, at most
  /// max_block), or -1 when max_bytes are out or memory is short.
  int take(std::size_t want = min_block) noexcept;
  /// The size of block `id` (its class).
  std::size_t capacity(unsigned id) const noexcept { return class_size(slots_[id].cls); }

  std::byte* data(unsigned id) noexcept override { return slots_[id].p; }
  std::size_t buffer_size() const noexcept override { return min_block; }
  void recycle(unsigned id) noexcept override;
  /// Gives free blocks beyond `keep` × min_block bytes per class back to the heap
  /// (an idle loop after a burst).
  void trim(std::size_t keep) noexcept;
  std::size_t available() const noexcept override {
    return out_bytes_ >= max_bytes_ ? 0 : (max_bytes_ - out_bytes_) / min_block;
  }
  /// Bytes in blocks handed out and not yet recycled.
  std::size_t bytes_out() const noexcept { return out_bytes_; }

  static constexpr std::size_t class_size(unsigned cls) noexcept { return min_block << cls; }
  static unsigned class_of(std::size_t want) noexcept;

 private:
  struct slot {
    std::byte* p = nullptr;
    std::uint8_t cls = 0;
  };
  std::vector<slot> slots_;               // by id; p == nullptr: id unused
  std::vector<unsigned> unused_ids_;      // ids whose block was freed
  std::vector<unsigned> free_[classes];   // ids of free blocks, by class (LIFO: warm)
  std::size_t free_bytes_[classes] = {};
  std::size_t count_[classes] = {};      // blocks of each class in existence
  std::size_t max_bytes_;
  std::size_t keep_bytes_;
  std::size_t out_bytes_ = 0;
};

/// The coalesced cross-thread wakeup (DESIGN.md §3). `pending` means "a token is
/// on its way or unread"; a poster writes a token only when it flips pending from
/// false to true, and the backend clears it exactly where it consumes the token
/// (libuv's uv_async_t does the same), whether that happens in a blocking wait()
/// or a non-blocking reap(). So a token reaped during a busy iteration can never
/// leave the flag set while no token is left to wake the loop.
///
/// Ordering: a poster pushes its work (seq_cst) before claim(); the loop calls
/// consumed() (seq_cst) before it next looks at the queue. If a poster's claim()
/// saw pending still set, its push precedes the loop's consumed() in the total
/// order, so the loop's next look at the queue finds the work.
class wakeup_token {
 public:
  /// Poster side: true if the caller must now write the token.
  bool claim() noexcept { return !pending_.exchange(true, std::memory_order_seq_cst); }
  /// Loop side, right after the token was read.
  void consumed() noexcept { pending_.store(false, std::memory_order_seq_cst); }

 private:
  std::atomic<bool> pending_{false};
};

/// Completes `op` inline (submit returns this: true, and `complete` is not called).
inline bool complete_inline(io_op& op, int res) noexcept {
  op.res = res;
  op.more = false;
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
  /// Thread-safe. Returns true if this call wrote a wakeup token (a system call),
  /// false if one was already on its way.
  virtual bool wake() noexcept = 0;
  /// Closes `fd` now, without waiting: operations in flight on it are cancelled
  /// first (they complete later with -ECANCELED, routed by op, never by fd number).
  /// For destructors, which cannot await.
  virtual void close_now(int fd) noexcept = 0;
  /// Operations owned by the backend (not counting its own wakeup read).
  virtual std::size_t in_flight() const noexcept = 0;
  /// The same, by kind.
  virtual const op_census& in_flight_ops() const noexcept = 0;
  /// Cheap check, for a loop deciding whether it may keep spinning: true if
  /// completions may be waiting to be reaped. May be conservative (true).
  virtual bool completions_pending() noexcept = 0;
  /// True if submit() only queues work that a later reap() or wait() hands to the
  /// kernel (io_uring); readiness backends make their system calls at once.
  virtual bool queues_submissions() const noexcept { return false; }
  /// Hands what submit() has queued to the kernel now, without waiting for or
  /// reaping completions (loop_options::submit_after). An error is left for the
  /// next reap() or wait() to meet. Loop thread only.
  virtual void flush() noexcept {}
  /// The loop is about to hand control back to its caller (run or run_forever
  /// returns): hand queued work to the kernel and let it finish what it can
  /// finish at once, so that a cancelled watch no longer holds its file. (An
  /// io_uring poll holds a reference to the file it watches; the cancel removes
  /// it, but with DEFER_TASKRUN the request is freed only inside io_uring_enter
  /// with GETEVENTS. Without this, a pipe the program closed right after
  /// remove_reader stayed open while the loop was stopped, and the child
  /// writing to it never got EPIPE.) Completions stay queued for the next run.
  /// Loop thread only.
  virtual void settle() noexcept { flush(); }
  /// Most bytes one receive completion carries (loop_options::recv_limit).
  std::size_t recv_limit() const noexcept { return recv_limit_; }
  void set_recv_limit(std::size_t n) noexcept { recv_limit_ = n; }
  /// Called on the loop thread before the loop first runs (io_uring enables its
  /// ring there, making that thread the single issuer).
  virtual void attach_thread() {}
  /// The receive buffers for recv_multi (made on first use), or nullptr where the
  /// backend has none (io_uring without caps().provided_buffers).
  virtual buffer_ring* recv_buffers() { return nullptr; }
  /// The loop is idle after a burst (loop_options::trim_after_tasks): give back
  /// what the backend keeps for reuse beyond what the next burst needs first.
  virtual void release_idle_memory() noexcept {}
  /// True if a host program runs this backend's event loop (see host_driver): the
  /// eddy loop must then not run itself, and wait() never blocks.
  virtual bool hosted() const noexcept { return false; }
  /// Hosted backends: start calling d.step from the host's loop (once, from the
  /// loop's constructor). Others ignore it.
  virtual void drive(host_driver d) { (void)d; }
  /// Hosted backends: work was queued outside a turn (a task spawned by host
  /// code): make the host's loop alive and run a turn soon. Loop thread only.
  virtual void poke() noexcept {}

 private:
  std::size_t recv_limit_ = 256 * 1024;
};

/// For a close made where no open loop runs (a pool thread, a plain thread, after
/// the loop closed): if a readiness backend's loop watches fd, hands the close to
/// that loop (which ends the watch, then closes) and returns true; otherwise false
/// and the caller closes fd. Any thread (docs/fd_ownership.md).
bool hand_off_close(int fd) noexcept;

/// One row of the backend table (io/backend_table.cpp): adding a backend is one
/// row plus its folder.
struct backend_entry {
  backend_kind kind;
  std::string_view name;
  /// Builds the backend; throws std::system_error (resource errors included).
  std::unique_ptr<backend> (*make)(const backend_config&);
  /// True if the backend can run here; on false, `why` says why. Throws
  /// std::system_error for resource errors (ENOMEM, EMFILE), which are never a
  /// reason to fall back.
  bool (*usable)(std::string& why);
};

/// Every backend eddy was built with, in the order `automatic` tries them.
std::span<const backend_entry> backend_table() noexcept;

/// Chooses and builds the backend for `requested` (from_env reads EDDY_BACKEND);
/// `why` receives the reason for the choice. Throws std::invalid_argument for a bad
/// EDDY_BACKEND, std::system_error when the requested backend cannot be built, or
/// on a resource error (ENOMEM, EMFILE): those are reported, never hidden behind a
/// fallback.
std::unique_ptr<backend> make_backend(backend_kind requested, const backend_config& cfg,
                                      std::string& why);

}  // namespace eddy::detail
