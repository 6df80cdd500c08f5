// The io_uring backend.
//
//  - Setup: SINGLE_ISSUER | DEFER_TASKRUN (6.1+) when the kernel takes them, with
//    the ring created disabled (R_DISABLED) and enabled by the thread that first
//    runs the loop, which so becomes its single issuer. Older kernels get a plain
//    ring. CQSIZE lets tests shrink the completion queue.
//  - Submission: SQEs are queued as ops arrive and go to the kernel in one
//    io_uring_enter per loop iteration (reap or wait). A full SQ is flushed early.
//  - Completion: user_data is the io_op's address; 0 marks SQEs whose CQE nobody
//    needs (cancel requests, the cancel half of a close); the wakeup read has its
//    own tag. With DEFER_TASKRUN completions are only posted inside
//    io_uring_enter(GETEVENTS), so a non-blocking reap still enters the kernel
//    when ops are in flight.
//  - CQ overflow: with IORING_FEAT_NODROP (5.5+) the kernel keeps overflowed CQEs
//    and sets IORING_SQ_CQ_OVERFLOW; we drain the CQ, flush the overflow with
//    io_uring_get_events and drain again, so no completion is lost. -EBUSY from
//    submit (overflow back-pressure) is answered by draining first.
//  - Provided buffers (5.19+ ring, made on first recv_buffers()): one group for
//    every multishot recv, incrementally consumed where the kernel can (6.12);
//    see uring_buffer_ring.hpp. A dry ring ends a multishot recv with -ENOBUFS;
//    the receiver re-arms (see io/net/receiver.cpp).
//  - Lifetime (DESIGN.md §4): an op is owned by the kernel from submit until its
//    final CQE (no IORING_CQE_F_MORE); only then is `complete` called. cancel()
//    only queues an ASYNC_CANCEL. close cancels every op on the fd (CANCEL_FD |
//    CANCEL_ALL, 5.19+) in an SQE hard-linked before the CLOSE, so nothing in
//    flight outlives the fd; completions are routed by op, never by fd number.
//  - Without cancel-by-fd (kernels before 6.1 here, or backend_config::
//    uring_baseline) the backend keeps each fd's in-flight ops on a list (the op's
//    link fields, indexed by fd number) and close cancels them one by one by
//    user_data (ASYNC_CANCEL, 5.5+). close_now() submits those cancels, and any op
//    on the fd still waiting in the SQ, before ::close(fd): an SQE that reached the
//    kernel only after the close would resolve the number to its next owner.
//  - Zero-copy sends (backend_config::send_zerocopy_min, off by default): a send
//    or sendmsg of at least that many bytes becomes SEND_ZC / SENDMSG_ZC (6.0 /
//    6.1). The kernel posts two CQEs: the result (with F_MORE), then a
//    notification (F_NOTIF) once it no longer reads the buffer. The op completes
//    on the second, with the first's result, so the caller may reuse the buffer
//    as after any write. Where the kernel reports it (6.2), a notification says
//    whether the data was copied after all (loopback always is); the counts are
//    logged at debug level when the ring closes.
//  - cancel() never enters the kernel: a cancel that finds the SQ full waits in a
//    backlog that the next enter (reap or wait) submits first. An op that ends
//    while its cancel is in the backlog leaves it, so a cancel never reaches a
//    later op that reuses the address.
#include <liburing.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "compat/kernel_probe.hpp"
#include "io/backend.hpp"
#include "io/uring/uring_buffer_ring.hpp"
#include "runtime/log.hpp"

// Names Debian's liburing 2.3 lacks, with the kernel UAPI's values.
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)  // Linux 6.2: sqe->ioprio of SEND_ZC
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)  // Linux 6.2: in the notification's res
#endif

namespace eddy::detail {
namespace {

constexpr std::uint64_t ignore_tag = 0;
// Tags a user_data as the retry poll of the op at that address (ops are 8-aligned;
// bit 0 marks the wakeup read).
constexpr std::uint64_t poll_bit = 2;
constexpr unsigned short recv_group = 0;

class uring_backend final : public backend {
 public:
  explicit uring_backend(const backend_config& o) : cfg_(o) {
    evfd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (evfd_ < 0) throw std::system_error(errno, std::system_category(), "eddy: eventfd");
    const unsigned base = IORING_SETUP_SUBMIT_ALL | (o.uring_cq_entries ? IORING_SETUP_CQSIZE : 0u);
    // TASKRUN_FLAG (5.19) makes pending deferred completions visible in the SQ
    // flags, so completions_pending() needs no system call.
    const unsigned tries[] = {
        base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
            IORING_SETUP_TASKRUN_FLAG,
        base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        base | IORING_SETUP_COOP_TASKRUN,
        base,
        o.uring_cq_entries ? IORING_SETUP_CQSIZE : 0u,  // 5.11-5.17: the baseline ring
    };
    constexpr std::size_t n_tries = sizeof tries / sizeof tries[0];
    int r = -EINVAL;
    for (std::size_t t = o.uring_baseline ? n_tries - 1 : 0; t < n_tries; ++t) {
      const unsigned flags = tries[t];
      io_uring_params p{};
      p.flags = flags;
      p.cq_entries = o.uring_cq_entries;
      r = io_uring_queue_init_params(o.uring_entries, &ring_, &p);
      if (r == 0) {
        flags_ = flags;
        features_ = p.features;
        break;
      }
      if (r != -EINVAL) break;  // only "unknown flag" is worth retrying with fewer
    }
    if (r != 0) {
      ::close(evfd_);
      throw std::system_error(-r, std::system_category(), "eddy: io_uring_queue_init");
    }
    caps_.ns_timeouts = true;
    caps_.batched_submission = caps_.poll_holds_file = true;
    caps_.single_issuer = (flags_ & IORING_SETUP_SINGLE_ISSUER) != 0;
    caps_.defer_taskrun = (flags_ & IORING_SETUP_DEFER_TASKRUN) != 0;
    io_uring_probe* probe = o.uring_baseline ? nullptr : io_uring_get_probe_ring(&ring_);
    if (probe != nullptr) {
      caps_.multishot_accept = io_uring_opcode_supported(probe, IORING_OP_ACCEPT) &&
                               caps_.defer_taskrun;  // 5.19 accept multishot; 6.1 for DEFER
      caps_.multishot_recv = caps_.multishot_accept;
      // Buffer rings (register_buf_ring) came with 5.19; multishot recv with 6.0.
      caps_.provided_buffers = caps_.multishot_recv;
      // OPENAT2 (5.6), STATX (5.6), RENAMEAT/UNLINKAT (5.11), MKDIRAT (5.15).
      caps_.file_ops = io_uring_opcode_supported(probe, IORING_OP_OPENAT2) &&
                       io_uring_opcode_supported(probe, IORING_OP_STATX) &&
                       io_uring_opcode_supported(probe, IORING_OP_RENAMEAT) &&
                       io_uring_opcode_supported(probe, IORING_OP_UNLINKAT) &&
                       io_uring_opcode_supported(probe, IORING_OP_MKDIRAT);
      if (o.send_zerocopy_min != 0 && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) &&
          io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC)) {
        zc_min_ = o.send_zerocopy_min;
        zc_report_ = running_kernel().at_least(6, 2);
      }
      io_uring_free_probe(probe);
    }
    // ASYNC_CANCEL by fd came with 5.19, as did DEFER_TASKRUN's predecessor work;
    // a kernel that took DEFER_TASKRUN (6.1) certainly has it.
    caps_.cancel_by_fd = caps_.defer_taskrun;
    track_ = !caps_.cancel_by_fd;
    if (o.uring_baseline)
      log_debug("eddy: io_uring limited to the Linux 5.11 baseline (uring_baseline): plain ring, "
                "single-shot ops, close cancels op by op");
    // Each missing feature degrades one path, never the whole backend.
    if (!caps_.defer_taskrun)
      log_debug("eddy: io_uring without SINGLE_ISSUER|DEFER_TASKRUN (kernel %s): completions are "
                "posted by task work, and receive() and accept fall back to one operation at a time",
                running_kernel().release.c_str());
    if (!caps_.cancel_by_fd)
      log_debug("eddy: io_uring without ASYNC_CANCEL_FD: close() cancels the fd's operations one "
                "by one");
    if (!(flags_ & IORING_SETUP_R_DISABLED)) arm_wake();
  }

  ~uring_backend() override {
    // The wakeup read writes into this object: cancel it and wait for its CQE
    // before the ring (and we) go away.
    if (wake_armed_ && enabled()) {
      if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) {
        io_uring_prep_cancel64(sqe, wake_tag(), 0);
        io_uring_sqe_set_data64(sqe, ignore_tag);
      }
      for (int i = 0; i < 100 && wake_armed_; ++i) {
        __kernel_timespec ts{0, 10'000'000};
        io_uring_cqe* cqe = nullptr;
        io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
        drain(UINT32_MAX);
      }
    }
    if (zc_sends_ != 0)
      log_debug("eddy: io_uring zero-copy sends: %llu, of which the kernel copied %llu%s",
                static_cast<unsigned long long>(zc_sends_), static_cast<unsigned long long>(zc_copied_),
                zc_report_ ? "" : " (not reported before Linux 6.2)");
    bufring_.reset();
    io_uring_queue_exit(&ring_);
    ::close(evfd_);
  }

  backend_kind kind() const noexcept override { return backend_kind::io_uring; }
  const backend_caps& caps() const noexcept override { return caps_; }
  std::size_t in_flight() const noexcept override { return in_flight_.total(); }
  const op_census& in_flight_ops() const noexcept override { return in_flight_; }

  buffer_ring* recv_buffers() override {
    if (!bufring_ && caps_.provided_buffers && enabled()) {
      // Sizes from loop_options, else by kernel feature (see uring_buffer_ring.hpp).
      try {
        const bool inc = cfg_.uring_incremental;
        auto make = [&](bool incremental, unsigned n, std::size_t size) {
          bufring_ = std::make_unique<uring_buffer_ring>(&ring_, recv_group, n, size, incremental);
        };
        const std::size_t big = (cfg_.recv_limit + 4095) / 4096 * 4096;
        make(inc, cfg_.uring_buffers ? cfg_.uring_buffers : (inc ? 32 : 256),
             cfg_.uring_buffer_size ? cfg_.uring_buffer_size : (inc ? big : 16 * 1024));
        if (inc && !bufring_->incremental() && cfg_.uring_buffers == 0 && cfg_.uring_buffer_size == 0) {
          // No incremental consumption here (before 6.12): whole small buffers,
          // so a 1 KiB message does not take a 256 KiB buffer.
          bufring_.reset();
          make(false, 256, 16 * 1024);
        }
        log_debug("eddy: provided-buffer ring %s", bufring_->incremental() ? "incremental" : "whole buffers");
      } catch (const std::system_error& e) {
        // Not fatal: receive() falls back to a plain recv into pooled blocks.
        log_debug("eddy: no provided-buffer ring: %s", e.what());
        caps_.provided_buffers = false;
        caps_.multishot_recv = false;
      }
    }
    return bufring_.get();
  }

  void attach_thread() override {
    if (flags_ & IORING_SETUP_R_DISABLED) {
      // Debian's liburing 2.3 declares io_uring_enable_rings but does not export
      // it; the register opcode is all it does.
      if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr,
                    0) != 0)
        throw std::system_error(errno, std::system_category(), "eddy: io_uring enable rings");
      flags_ &= ~IORING_SETUP_R_DISABLED;
      arm_wake();
    }
  }

  bool submit(io_op& op) override {
    op.cancel_requested = false;
    op.more = false;
    op.has_buffer = false;
    op.zero_copy = false;
    op.poll_wait = false;
    if (op.code == op_code::nop) {
      return complete_inline(op, 0);
    }
    if (op.fd < 0 && !is_path_op(op.code)) {
      return complete_inline(op, -EBADF);
    }
    if (op.code == op_code::recv_multi && !bufring_) {
      return complete_inline(op, -EOPNOTSUPP);
    }
    if (op.code == op_code::close && caps_.cancel_by_fd) {
      io_uring_sqe* c = sqe();
      io_uring_prep_cancel_fd(c, op.fd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(c, ignore_tag);
      c->flags |= IOSQE_IO_HARDLINK;  // -ENOENT (nothing to cancel) must not fail the close
    } else if (op.code == op_code::close && track_) {
      cancel_fd_ops(op.fd);
    } else if (track_) {
      reserve_fd(op.fd);  // before the SQE: nothing may throw once it names the op
    }
    io_uring_sqe* s = sqe();
    prep(s, op);
    if (op.run_async) s->flags |= IOSQE_ASYNC;
    io_uring_sqe_set_data(s, &op);
    op.state = op_state::in_flight;
    in_flight_.in(op);
    if (track_ && op.code != op_code::close) track(op);
    return false;
  }

  void cancel(io_op& op) noexcept override {
    if (op.state != op_state::in_flight || op.cancel_requested) return;
    op.cancel_requested = true;
    queue_cancel(op);
  }

  void close_now(int fd) noexcept override {
    if (fd < 0) return;
    if (track_ && fd_has_ops(fd)) {
      cancel_fd_ops(fd);
      // Ops on fd still in the SQ must reach the kernel while fd names this file.
      submit_now();
    }
    if (caps_.cancel_by_fd && in_flight_.total() != 0) {
      if (io_uring_sqe* s = sqe_noexcept()) {
        io_uring_prep_cancel_fd(s, fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(s, ignore_tag);
        // The cancel must reach the kernel while fd still names the file.
        io_uring_submit(&ring_);
      }
    }
    ::close(fd);
  }

  unsigned reap(unsigned budget) override {
    if (io_uring_sq_ready(&ring_) != 0 || in_flight_.total() != 0) enter(false, -1);
    return drain(budget);
  }

  unsigned wait(std::int64_t timeout_ns, unsigned budget) override {
    if (!wake_armed_) arm_wake();
    enter(true, timeout_ns);
    return drain(budget);
  }

  bool wake() noexcept override {
    if (!token_.claim()) return false;
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(evfd_, &one, sizeof one);
    return true;
  }

  bool queues_submissions() const noexcept override { return true; }

  void flush() noexcept override {
    if (!enabled()) return;  // not yet attached to its thread: nothing was queued
    if (!cancel_backlog_.empty()) submit_backlog();
    // Refused (-EBUSY, -EAGAIN) or failed: the SQEs stay queued and the next
    // enter submits them or reports the error.
    if (io_uring_sq_ready(&ring_) != 0) io_uring_submit(&ring_);
  }

  void settle() noexcept override {
    if (!enabled()) return;
    flush();
    // Runs the deferred task work (the freeing of cancelled requests) without
    // waiting; the CQEs it posts are reaped by the next run.
    if ((flags_ & IORING_SETUP_DEFER_TASKRUN) && in_flight_.total() != 0) (void)io_uring_get_events(&ring_);
  }

  bool completions_pending() noexcept override {
    if (io_uring_cq_ready(&ring_) != 0 || io_uring_sq_ready(&ring_) != 0) return true;
    if (!(flags_ & IORING_SETUP_DEFER_TASKRUN)) return false;
    // Deferred completions are posted only inside io_uring_enter; without
    // TASKRUN_FLAG we cannot see them, so say yes.
    if (!(flags_ & IORING_SETUP_TASKRUN_FLAG)) return in_flight_.total() != 0;
    return (IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) != 0;
  }

 private:
  bool enabled() const noexcept { return !(flags_ & IORING_SETUP_R_DISABLED); }

  // The SQE for `op` (its user_data set by the caller).
  void prep(io_uring_sqe* s, io_op& op) noexcept {
    const auto off =
        static_cast<__u64>(op.offset == UINT64_MAX ? -1 : static_cast<long long>(op.offset));
    switch (op.code) {
      case op_code::read:
        io_uring_prep_read(s, op.fd, op.buf, op.len, off);
        break;
      case op_code::write:
        io_uring_prep_write(s, op.fd, op.buf, op.len, off);
        break;
      case op_code::readv:
        io_uring_prep_readv(s, op.fd, static_cast<const iovec*>(op.buf), op.len, off);
        break;
      case op_code::writev:
        io_uring_prep_writev(s, op.fd, static_cast<const iovec*>(op.buf), op.len, off);
        break;
      case op_code::poll:
        io_uring_prep_poll_add(s, op.fd, op.flags);
        break;
      case op_code::close:
        io_uring_prep_close(s, op.fd);
        break;
      case op_code::accept:
        io_uring_prep_accept(s, op.fd, static_cast<sockaddr*>(op.buf),
                             static_cast<socklen_t*>(op.aux), static_cast<int>(op.flags));
        break;
      case op_code::accept_multi:
        io_uring_prep_multishot_accept(s, op.fd, nullptr, nullptr, static_cast<int>(op.flags));
        break;
      case op_code::recv_multi:
        io_uring_prep_recv_multishot(s, op.fd, nullptr, 0, static_cast<int>(op.flags));
        s->flags |= IOSQE_BUFFER_SELECT;
        s->buf_group = recv_group;
        break;
      case op_code::connect:
        io_uring_prep_connect(s, op.fd, static_cast<const sockaddr*>(op.buf), op.len);
        break;
      case op_code::recv:
        io_uring_prep_recv(s, op.fd, op.buf, op.len, static_cast<int>(op.flags));
        break;
      case op_code::send:
        if (zc_min_ != 0 && op.len >= zc_min_) {
          io_uring_prep_send_zc(s, op.fd, op.buf, op.len, static_cast<int>(op.flags) | MSG_NOSIGNAL, 0);
          mark_zero_copy(s, op);
        } else {
          io_uring_prep_send(s, op.fd, op.buf, op.len, static_cast<int>(op.flags) | MSG_NOSIGNAL);
        }
        break;
      case op_code::recvmsg:
        io_uring_prep_recvmsg(s, op.fd, static_cast<msghdr*>(op.buf), op.flags);
        break;
      case op_code::sendmsg:
        if (zc_min_ != 0 && msg_bytes(static_cast<const msghdr*>(op.buf)) >= zc_min_) {
          io_uring_prep_sendmsg_zc(s, op.fd, static_cast<const msghdr*>(op.buf), op.flags | MSG_NOSIGNAL);
          mark_zero_copy(s, op);
        } else {
          io_uring_prep_sendmsg(s, op.fd, static_cast<const msghdr*>(op.buf), op.flags | MSG_NOSIGNAL);
        }
        break;
      case op_code::shutdown:
        io_uring_prep_shutdown(s, op.fd, static_cast<int>(op.flags));
        break;
      case op_code::splice:
        io_uring_prep_splice(s, op.fd, -1, op.aux_fd, -1, op.len, op.flags);
        break;
      // File ops (eddy::fs). The kernel tries each inline and hands what would
      // block (a page-cache miss, a lookup that sleeps) to its io-wq workers; no
      // SQPOLL (libuv 1.45+ met kernel bugs there and made it opt-in).
      case op_code::openat:
        io_uring_prep_openat2(s, op.fd, static_cast<const char*>(op.buf),
                              static_cast<open_how*>(op.aux));
        break;
      case op_code::statx:
        io_uring_prep_statx(s, op.fd, static_cast<const char*>(op.buf),
                            static_cast<int>(op.flags), op.len, static_cast<struct statx*>(op.aux));
        break;
      case op_code::fsync:
        io_uring_prep_fsync(s, op.fd, (op.flags & fsync_datasync) ? IORING_FSYNC_DATASYNC : 0u);
        break;
      case op_code::renameat:
        io_uring_prep_renameat(s, op.fd, static_cast<const char*>(op.buf), op.aux_fd,
                               static_cast<const char*>(op.aux), op.flags);
        break;
      case op_code::unlinkat:
        io_uring_prep_unlinkat(s, op.fd, static_cast<const char*>(op.buf),
                               static_cast<int>(op.flags));
        break;
      case op_code::mkdirat:
        io_uring_prep_mkdirat(s, op.fd, static_cast<const char*>(op.buf),
                              static_cast<mode_t>(op.len));
        break;
      default:
        io_uring_prep_nop(s);
        break;
    }
  }

  // A socket send or receive that came back -EAGAIN although eddy never asks for
  // MSG_DONTWAIT. Linux (6.x) caps how often it re-polls a request that made
  // partial progress, then hands it to an io-wq thread, where the socket's own
  // O_NONBLOCK makes the call fail with EAGAIN instead of blocking (seen here with
  // a gathered 16 MiB echo; Seastar met it too). The op is not done: wait for
  // readiness with a poll of our own (user_data = the op's address | poll_bit),
  // then issue it again. Returns false when no SQE is free (the caller completes
  // the op with -EAGAIN as the kernel said).
  static bool retries_after_poll(const io_op& op) noexcept {
    return op.code == op_code::send || op.code == op_code::sendmsg || op.code == op_code::recv ||
           op.code == op_code::recvmsg;
  }
  bool poll_then_retry(io_op& op) noexcept {
    io_uring_sqe* s = sqe_noexcept();
    if (s == nullptr) return false;
    const bool out = op.code == op_code::send || op.code == op_code::sendmsg;
    io_uring_prep_poll_add(s, op.fd, out ? POLLOUT : POLLIN);
    io_uring_sqe_set_data64(s, reinterpret_cast<std::uint64_t>(&op) | poll_bit);
    op.poll_wait = true;
    return true;
  }
  // The user_data that names `op` in the kernel now: the op itself, or its poll.
  static std::uint64_t cancel_target(const io_op& op) noexcept {
    return reinterpret_cast<std::uint64_t>(&op) | (op.poll_wait ? poll_bit : 0);
  }

  void mark_zero_copy(io_uring_sqe* s, io_op& op) noexcept {
    if (zc_report_) s->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
    op.zero_copy = true;
  }
  static std::size_t msg_bytes(const msghdr* m) noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < m->msg_iovlen; ++i) n += m->msg_iov[i].iov_len;
    return n;
  }
  std::uint64_t wake_tag() const noexcept {
    return reinterpret_cast<std::uint64_t>(&wake_buf_) | 1;
  }

  void arm_wake() {
    io_uring_sqe* s = sqe();
    io_uring_prep_read(s, evfd_, &wake_buf_, sizeof wake_buf_, 0);
    io_uring_sqe_set_data64(s, wake_tag());
    wake_armed_ = true;
  }

  // Cancels `op` by user_data: an SQE if one is free, else the backlog. Never
  // enters the kernel. If even the backlog cannot grow (ENOMEM), the op's
  // cancel_requested is cleared so that a later cancel() tries again.
  void queue_cancel(io_op& op) noexcept {
    if (io_uring_sqe* s = io_uring_get_sqe(&ring_)) {
      io_uring_prep_cancel64(s, cancel_target(op), 0);
      io_uring_sqe_set_data64(s, ignore_tag);
      return;
    }
    try {
      cancel_backlog_.push_back(&op);
    } catch (const std::bad_alloc&) {
      op.cancel_requested = false;
    }
  }

  // Submits backlogged cancels ahead of the enter that follows.
  void submit_backlog() noexcept {
    std::size_t i = 0;
    while (i < cancel_backlog_.size()) {
      io_uring_sqe* s = io_uring_get_sqe(&ring_);
      if (s == nullptr) {
        if (io_uring_submit(&ring_) <= 0) break;  // kernel refused: try at the next enter
        continue;
      }
      io_uring_prep_cancel64(s, cancel_target(*cancel_backlog_[i++]), 0);
      io_uring_sqe_set_data64(s, ignore_tag);
    }
    cancel_backlog_.erase(cancel_backlog_.begin(),
                          cancel_backlog_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  void drop_from_backlog(io_op* op) noexcept {
    for (std::size_t i = 0; i < cancel_backlog_.size(); ++i)
      if (cancel_backlog_[i] == op) {
        cancel_backlog_.erase(cancel_backlog_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
  }

  // Flushes the SQ now (close_now); retries after draining if the kernel pushes
  // back, since the fd is about to be closed.
  void submit_now() noexcept {
    for (int i = 0; i < 64 && io_uring_sq_ready(&ring_) != 0; ++i) {
      if (io_uring_submit(&ring_) > 0) continue;
      drain(UINT32_MAX);
      if (io_uring_cq_has_overflow(&ring_)) io_uring_get_events(&ring_);
    }
  }

  // Per-fd lists of in-flight ops (track_ only), through the op's link fields.
  void reserve_fd(int fd) {
    const auto f = static_cast<std::size_t>(fd);
    if (f >= fd_ops_.size()) fd_ops_.resize(std::max<std::size_t>(f + 1, fd_ops_.size() * 2));
  }
  void track(io_op& op) noexcept {
    const auto fd = static_cast<std::size_t>(op.fd);
    op.link_prev = nullptr;
    op.link_next = fd_ops_[fd];
    if (op.link_next != nullptr) op.link_next->link_prev = &op;
    fd_ops_[fd] = &op;
  }
  void untrack(io_op& op) noexcept {
    if (op.code == op_code::close) return;
    if (op.link_prev != nullptr)
      op.link_prev->link_next = op.link_next;
    else
      fd_ops_[static_cast<std::size_t>(op.fd)] = op.link_next;
    if (op.link_next != nullptr) op.link_next->link_prev = op.link_prev;
    op.link_next = op.link_prev = nullptr;
  }
  bool fd_has_ops(int fd) const noexcept {
    return static_cast<std::size_t>(fd) < fd_ops_.size() &&
           fd_ops_[static_cast<std::size_t>(fd)] != nullptr;
  }
  // Cancels every op in flight on fd. cancel_requested is left alone: as with
  // cancel-by-fd, a close's cancel is not the task's (an op that completed anyway
  // must not turn into a pending cancellation of its task).
  void cancel_fd_ops(int fd) noexcept {
    if (!fd_has_ops(fd)) return;
    for (io_op* o = fd_ops_[static_cast<std::size_t>(fd)]; o != nullptr; o = o->link_next)
      queue_cancel(*o);
  }

  io_uring_sqe* sqe_noexcept() noexcept {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (s == nullptr) {
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    return s;
  }

  io_uring_sqe* sqe() {
    for (int i = 0; i < 64; ++i) {
      if (io_uring_sqe* s = sqe_noexcept()) return s;
      // SQ full and the kernel refused more (-EBUSY: CQ back-pressure): make room.
      drain(UINT32_MAX);
      if (io_uring_cq_has_overflow(&ring_)) io_uring_get_events(&ring_);
    }
    throw std::system_error(EBUSY, std::system_category(),
                            "eddy: io_uring submission queue stuck full");
  }

  void enter(bool block, std::int64_t timeout_ns) {
    if (!cancel_backlog_.empty()) submit_backlog();
    int r;
    if (block) {
      __kernel_timespec ts{};
      __kernel_timespec* tsp = nullptr;
      if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1'000'000'000;
        ts.tv_nsec = timeout_ns % 1'000'000'000;
        tsp = &ts;
      }
      io_uring_cqe* cqe = nullptr;
      r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
    } else {
      r = io_uring_submit_and_get_events(&ring_);
    }
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) {
      throw std::system_error(-r, std::system_category(), "eddy: io_uring_enter");
    }
  }

  unsigned drain(unsigned budget) noexcept {
    unsigned total = 0;
    for (;;) {
      unsigned n = 0;
      unsigned head;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        handle(cqe);
        if (++n == budget - total) break;
      }
      io_uring_cq_advance(&ring_, n);
      total += n;
      if (total >= budget) break;
      if (io_uring_cq_has_overflow(&ring_)) {
        io_uring_get_events(&ring_);
        continue;
      }
      if (n == 0) break;
    }
    return total;
  }

  void handle(io_uring_cqe* cqe) noexcept {
    const std::uint64_t ud = cqe->user_data;
    if (ud == ignore_tag) return;
    if (ud == wake_tag()) {
      wake_armed_ = false;
      token_.consumed();  // the token was read, whether this is a wait or a reap
      return;
    }
    if (ud & poll_bit) {
      // Our poll for an op that came back -EAGAIN: issue the op again, unless the
      // poll failed or the op was cancelled meanwhile.
      auto* op = reinterpret_cast<io_op*>(ud & ~poll_bit);
      op->poll_wait = false;
      if (cqe->res >= 0 && !op->cancel_requested) {
        if (io_uring_sqe* s = sqe_noexcept()) {
          prep(s, *op);
          io_uring_sqe_set_data(s, op);
          return;
        }
      }
      finish(*op, cqe->res < 0 ? cqe->res : op->cancel_requested ? -ECANCELED : -EAGAIN);
      return;
    }
    auto* op = reinterpret_cast<io_op*>(ud);
    if (cqe->res == -EAGAIN && retries_after_poll(*op) && !op->cancel_requested && poll_then_retry(*op))
      return;
    if (op->zero_copy) {
      if (cqe->flags & IORING_CQE_F_NOTIF) {
        // The kernel let go of the buffer: complete with the result kept below.
        ++zc_sends_;
        if (zc_report_ && (static_cast<unsigned>(cqe->res) & IORING_NOTIF_USAGE_ZC_COPIED)) ++zc_copied_;
      } else {
        op->res = cqe->res;
        if (cqe->flags & IORING_CQE_F_MORE) return;  // a notification follows
      }
      op->zero_copy = false;
      finish(*op, op->res);
      return;
    }
    op->res = cqe->res;
    op->more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    op->has_buffer = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
    op->buffer_id = static_cast<std::uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (op->has_buffer && bufring_) op->aux = bufring_->filled(op->buffer_id, cqe->res, cqe->flags);
    if (cqe->res == -ENOBUFS && bufring_) bufring_->ran_dry();
    if (op->more)
      op->complete(op);
    else
      finish(*op, op->res);
  }

  // The final completion of an op whose result is settled here (not a CQE's).
  void finish(io_op& op, int res) noexcept {
    op.res = res;
    op.more = false;
    op.state = op_state::done;
    in_flight_.out(op);
    if (track_) untrack(op);
    if (!cancel_backlog_.empty()) drop_from_backlog(&op);
    op.complete(&op);
  }

  backend_config cfg_;
  io_uring ring_{};
  std::unique_ptr<uring_buffer_ring> bufring_;
  unsigned flags_ = 0;
  unsigned features_ = 0;
  int evfd_ = -1;
  alignas(8) std::uint64_t wake_buf_ = 0;
  bool wake_armed_ = false;
  wakeup_token token_;
  op_census in_flight_;
  backend_caps caps_;
  bool track_ = false;                  // no cancel-by-fd: close cancels op by op
  std::vector<io_op*> fd_ops_;          // track_: head of each fd's in-flight list
  std::vector<io_op*> cancel_backlog_;  // cancels that found the SQ full
  std::size_t zc_min_ = 0;              // sends this big go zero-copy (0: never)
  bool zc_report_ = false;              // the kernel says when it copied (6.2)
  std::uint64_t zc_sends_ = 0, zc_copied_ = 0;
};

}  // namespace

std::unique_ptr<backend> make_uring_backend(const backend_config& o) {
  return std::make_unique<uring_backend>(o);
}

bool uring_usable(std::string& why) {
  const uring_probe p = probe_uring();  // throws on a resource error
  if (!p.usable) why = p.why;
  return p.usable;
}

}  // namespace eddy::detail
