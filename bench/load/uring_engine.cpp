// echo_load's io_uring engine (--engine uring): the same connections and model as the
// epoll engine (ConnCore, engine_common.hpp), driven through liburing directly, one ring
// per thread. Built only with liburing (ECHO_LOAD_HAVE_URING); needs Linux >= 6.0 for
// multishot recv with a provided-buffer ring.
//
// Per loop pass exactly one io_uring_enter both submits every queued SQE and waits for
// at least one completion (or the next rate-mode send time / t_end, via the EXT_ARG
// timeout of io_uring_submit_and_wait_timeout). The ring is SINGLE_ISSUER|DEFER_TASKRUN
// where the kernel takes it, so completion work runs in that same enter, in this thread.
//
// Per request at steady state: one SEND SQE (from the read-only pattern table, no copy;
// a short send resubmits the rest) and two CQEs (send, recv). Receives are one multishot
// RECV per connection picking buffers from a provided-buffer ring, rather than one
// single-shot RECV per connection into its own buffer: the single-shot form needs a new
// RECV SQE per request, and each of those is issued, finds no data yet (the echo has not
// come back), and arms a fresh poll (allocation, wait-queue add, later removal) -- at 100
// conns x 1 KiB that is a third more SQEs and the per-request poll setup on top. The
// multishot recv stays armed, so a request costs its send and the recv's data copy. The
// buffers go back to the ring (a store to shared memory, no system call) as soon as a
// chunk has been verified, so a handful suffice and an idle connection holds none.
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "buf_ring.hpp"
#include "engine_common.hpp"

namespace echo_load {
namespace {

enum Op : std::uint64_t { kConnect = 0, kSend = 1, kRecv = 2, kCancel = 3 };
constexpr std::uint64_t pack(Op op, std::size_t i) { return (std::uint64_t{i} << 2) | op; }
constexpr unsigned kGroup = 0;  // provided-buffer group id (one ring per thread, so one each)

unsigned pow2_at_least(std::uint64_t n) {
  unsigned p = 1;
  while (p < n) p <<= 1;
  return p;
}

// SINGLE_ISSUER|DEFER_TASKRUN (6.1) first, then CQSIZE alone, then nothing: older kernels
// reject unknown flags with EINVAL. The flags only change cost, never behaviour.
int setup_ring(io_uring& ring, unsigned sq_entries, unsigned cq_entries) {
  const unsigned tries[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
                            IORING_SETUP_CQSIZE, 0};
  int e = -EINVAL;
  for (unsigned flags : tries) {
    io_uring_params p{};
    p.flags = flags;
    p.cq_entries = cq_entries;
    e = io_uring_queue_init_params(sq_entries, &ring, &p);
    if (e != -EINVAL) return e;
  }
  return e;
}

class UringWorker : ConnCore {
 public:
  UringWorker(const Plan& plan, std::uint32_t first_id, std::uint32_t stride)
      : ConnCore(plan, first_id, stride) {}

  Result run() {
    // Rate mode sleeps to exact send times; the default 50 us timer slack would add
    // that much (unmeasured by us, charged to the server) to every scheduled send.
    if (o_.rate > 0) prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (!setup()) {
      res_.errors.connect += conns_.size();
      return std::move(res_);
    }
    for (std::size_t i = 0; i < conns_.size(); ++i) start_connect(i);
    loop();
    tally_end();
    const bool drained = drain();
    io_uring_queue_exit(&ring_);
    for (auto& c : conns_)
      if (c.fd >= 0) close(c.fd);
    load::unmap_buf_ring(br_, buf_count_);
    // A request that outlived drain() could still write into a buffer: keep them then.
    if (drained) std::free(bufs_);
    return std::move(res_);
  }

 private:
  bool setup() {
    const std::uint64_t n = conns_.size();
    // Every connection has at most a SEND and a RECV re-arm queued per pass (a pass
    // that queues more flushes the SQ early, see sqe()); multishot recvs can post
    // several CQEs each, and the kernel keeps overflow (FEAT_NODROP) if the CQ fills.
    const unsigned sq = pow2_at_least(std::clamp<std::uint64_t>(2 * n + 16, 64, 4096));
    const unsigned cq = pow2_at_least(std::clamp<std::uint64_t>(4 * n + 64, 256, 65536));
    if (int e = setup_ring(ring_, sq, cq); e < 0) {
      std::fprintf(stderr, "echo_load: io_uring_queue_init: %s\n", std::strerror(-e));
      return false;
    }
    io_uring_register_ring_fd(&ring_);  // saves an fd lookup per enter; optional (5.18)

    // Buffers: one message at 4 KiB granularity, at most 64 KiB (a bigger message just
    // arrives in several chunks); two per connection up to 4096, at least 64.
    buf_size_ = static_cast<unsigned>(
        std::clamp<std::uint64_t>((o_.size + 4095) / 4096 * 4096, 4096, 65536));
    buf_count_ = pow2_at_least(std::clamp<std::uint64_t>(2 * n, 64, 4096));
    bufs_ = static_cast<unsigned char*>(std::aligned_alloc(4096, std::size_t{buf_count_} * buf_size_));
    if (bufs_ == nullptr) {
      std::fprintf(stderr, "echo_load: out of memory for receive buffers\n");
      io_uring_queue_exit(&ring_);
      return false;
    }
    int err = 0;
    br_ = load::map_buf_ring(&ring_, buf_count_, kGroup, err);
    if (br_ == nullptr) {
      std::fprintf(stderr, "echo_load: io_uring provided buffers: %s\n", std::strerror(err));
      std::free(bufs_);
      io_uring_queue_exit(&ring_);
      return false;
    }
    mask_ = io_uring_buf_ring_mask(buf_count_);
    for (unsigned b = 0; b < buf_count_; ++b) give_back(static_cast<std::uint16_t>(b));
    publish_buffers();
    return true;
  }

  unsigned char* buffer(std::uint16_t bid) const { return bufs_ + std::size_t{bid} * buf_size_; }

  // Returns a buffer to the ring; the kernel sees it at publish_buffers() (before the
  // next enter), so the chunk it held must be fully handled by then.
  void give_back(std::uint16_t bid) {
    io_uring_buf_ring_add(br_, buffer(bid), buf_size_, bid, mask_, static_cast<int>(returned_++));
  }
  void publish_buffers() {
    if (returned_ > 0) io_uring_buf_ring_advance(br_, static_cast<int>(returned_));
    returned_ = 0;
  }

  // A free SQE. Should the SQ be full (many timers due at once), what is queued is
  // submitted first: -EBUSY/-EAGAIN mean the kernel needs the CQ drained or memory, so
  // flush completions the kernel holds back into the CQ ring and retry. Completions are
  // copied out of the CQ before they are handled (reap), so there is room for them.
  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    while (s == nullptr) {
      int r = io_uring_submit(&ring_);
      if (r == -EBUSY || r == -EAGAIN) {
        io_uring_get_events(&ring_);
        sched_yield();
      } else if (r < 0 && r != -EINTR) {
        std::fprintf(stderr, "echo_load: io_uring_submit: %s\n", std::strerror(-r));
        std::abort();  // cannot queue I/O at all: nothing sensible to measure
      }
      s = io_uring_get_sqe(&ring_);
    }
    ++inflight_;
    return s;
  }

  void loop() {
    while (live_ > 0) {
      std::int64_t now = mono_ns();
      if (now >= p_.t_end) return;
      fire_timers(now, [this](std::size_t i, std::int64_t t) { pump(i, t); });
      publish_buffers();
      std::int64_t wait = next_wake() - mono_ns();
      int r;
      if (wait <= 0) {
        r = io_uring_submit_and_get_events(&ring_);  // a timer is due: do not sleep
      } else {
        __kernel_timespec ts{wait / 1000000000, wait % 1000000000};
        io_uring_cqe* cqe = nullptr;
        r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      }
      // -ETIME: the timeout passed (a timer is due, or t_end). -EINTR: a signal. -EBUSY
      // (CQ overflow backlog on older kernels) and -EAGAIN (no memory for requests): the
      // SQEs stay queued in the SQ ring and go out with the next enter, after reap()
      // has made room.
      if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) {
        std::fprintf(stderr, "echo_load: io_uring_enter: %s\n", std::strerror(-r));
        return;
      }
      reap();
    }
  }

  struct Cqe {
    std::uint64_t data;
    std::int32_t res;
    std::uint32_t flags;
  };

  // Handles every completion in the CQ. Each batch is copied out and the CQ advanced
  // before any is handled, so handlers may submit (sqe()) without the CQ blocking that.
  void reap() {
    Cqe batch[256];
    for (;;) {
      unsigned n = 0, head;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        batch[n++] = {cqe->user_data, cqe->res, cqe->flags};
        if (n == 256) break;
      }
      if (n == 0) return;
      io_uring_cq_advance(&ring_, n);
      for (unsigned k = 0; k < n; ++k) handle(batch[k]);
    }
  }

  void handle(const Cqe& e) {
    if (!(e.flags & IORING_CQE_F_MORE)) --inflight_;
    const auto op = static_cast<Op>(e.data & 3);
    const std::size_t i = static_cast<std::size_t>(e.data >> 2);
    switch (op) {
      case kConnect:
        on_connect(i, e.res);
        return;
      case kSend:
        on_send(i, e.res);
        return;
      case kRecv:
        on_recv(i, e.res, e.flags);
        return;
      case kCancel:
        return;
    }
  }

  void start_connect(std::size_t i) {
    // No O_NONBLOCK: io_uring makes its own nonblocking attempt and waits for readiness
    // itself (connect, send and recv alike), as for uring_echo_server's sockets.
    if (!open_socket(i, 0)) return;
    Conn& c = conns_[i];
    ++live_;
    io_uring_sqe* s = sqe();
    io_uring_prep_connect(s, c.fd, reinterpret_cast<const sockaddr*>(&p_.addr), p_.addrlen);
    io_uring_sqe_set_data64(s, pack(kConnect, i));
  }

  void on_connect(std::size_t i, int res) {
    Conn& c = conns_[i];
    if (c.state != State::Connecting) return;
    if (res < 0) {
      if (!warned_connect_) std::fprintf(stderr, "echo_load: connect: %s\n", std::strerror(-res));
      warned_connect_ = true;
      fail(i, res_.errors.connect);
      return;
    }
    const std::int64_t now = mono_ns();
    connected(i, now);
    arm_recv(i);  // queued ahead of the first send, so it is armed before any echo
    pump(i, now);
  }

  void arm_recv(std::size_t i) {
    Conn& c = conns_[i];
    io_uring_sqe* s = sqe();
    io_uring_prep_recv_multishot(s, c.fd, nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = kGroup;
    io_uring_sqe_set_data64(s, pack(kRecv, i));
    c.recv_armed = true;
  }

  // Issue every message that may go now, then send what is unsent.
  void pump(std::size_t i, std::int64_t now) {
    issue(i, now);
    flush(i);
  }

  // At most one SEND per connection in flight: two on one socket could complete out of
  // order. The next piece goes when it completes.
  void flush(std::size_t i) {
    Conn& c = conns_[i];
    if (c.send_busy) return;
    auto [off, len] = unsent(c);
    if (len == 0) return;
    io_uring_sqe* s = sqe();
    io_uring_prep_send(s, c.fd, pat_ + off, len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, pack(kSend, i));
    c.send_busy = true;
    c.send_len = static_cast<std::uint32_t>(len);
  }

  void on_send(std::size_t i, int res) {
    Conn& c = conns_[i];
    c.send_busy = false;
    if (c.state != State::Open) return;
    if (res > 0) {
      c.sent += static_cast<std::uint64_t>(res);
      flush(i);  // the rest of a short send, or what was issued meanwhile
      return;
    }
    if (res == -EAGAIN || res == -EINTR) {
      flush(i);
      return;
    }
    fail(i, res_.errors.reset);  // EPIPE, ECONNRESET, ... (as a failed send() on epoll)
  }

  void on_recv(std::size_t i, int res, std::uint32_t flags) {
    Conn& c = conns_[i];
    if (!(flags & IORING_CQE_F_MORE)) c.recv_armed = false;
    const bool has_buf = flags & IORING_CQE_F_BUFFER;
    const auto bid = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
    if (c.state != State::Open) {
      if (has_buf) give_back(bid);
      return;
    }
    if (res > 0 && has_buf) {
      // Bytes beyond what has been handed to the kernel cannot be an echo. The SEND in
      // flight counts: its completion may be reaped after the echo of its bytes.
      const std::uint64_t bound = c.sent + (c.send_busy ? c.send_len : 0);
      std::int64_t now = 0;
      const Rx rx = received(i, buffer(bid), static_cast<std::uint64_t>(res), bound, &now);
      give_back(bid);
      if (rx == Rx::Mismatch) {
        fail(i, res_.errors.mismatch);
        return;
      }
      if (rx == Rx::Completed) pump(i, now);
    } else if (res == 0) {  // the server closed: whatever was outstanding is a short read
      fail(i, res_.errors.eof);
      return;
    } else if (res != -ENOBUFS && res != -EAGAIN && res != -EINTR) {
      if (has_buf) give_back(bid);
      fail(i, res_.errors.reset);
      return;
    }
    // The multishot recv ended without an error (-ENOBUFS: the ring ran dry; the
    // buffers handled in this batch are back before the re-armed recv is submitted).
    if (!c.recv_armed && c.state == State::Open) arm_recv(i);
  }

  // Counts the error and shuts the socket down, which sends the server a FIN and ends
  // this connection's pending requests. The descriptor stays open until the run ends
  // so an SQE still queued for it can never reach a reused descriptor.
  void fail(std::size_t i, std::uint64_t& counter) {
    Conn& c = conns_[i];
    ++counter;
    shutdown(c.fd, SHUT_RDWR);
    c.state = State::Dead;
    --live_;
  }

  // After t_end: cancel every request still in flight and wait (bounded) until the
  // kernel has let go of all of them, so none can touch a buffer after it is freed.
  bool drain() {
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(s, pack(kCancel, 0));
    const std::int64_t give_up = mono_ns() + 1000000000;
    while (inflight_ > 0 && mono_ns() < give_up) {
      __kernel_timespec ts{0, 10000000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      unsigned head, n = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        if (!(cqe->flags & IORING_CQE_F_MORE)) --inflight_;
        ++n;
      }
      io_uring_cq_advance(&ring_, n);
    }
    return inflight_ == 0;
  }

  io_uring ring_{};
  io_uring_buf_ring* br_ = nullptr;
  unsigned char* bufs_ = nullptr;
  unsigned buf_size_ = 0, buf_count_ = 0;
  int mask_ = 0;
  unsigned returned_ = 0;      // buffers given back since the last publish_buffers()
  std::uint64_t inflight_ = 0;  // requests the kernel still holds (multishot: one)
};

}  // namespace

Result run_uring(const Plan& plan, std::uint32_t first_id, std::uint32_t stride) {
  return UringWorker(plan, first_id, stride).run();
}

std::string uring_unavailable() {
  io_uring ring;
  if (int e = io_uring_queue_init(8, &ring, 0); e < 0) return std::strerror(-e);
  io_uring_queue_exit(&ring);
  return {};
}

}  // namespace echo_load
