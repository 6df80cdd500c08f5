// stream_socket::receive(): bytes in buffers the loop lends (recv_buffer).
//
// Every backend with caps().multishot_recv (io_uring with a provided-buffer ring;
// the readiness engine under epoll with its own blocks): one multishot recv per
// socket, armed by the first receive() and left armed. The backend fills a buffer
// only when data arrives, so an idle connection holds none. Each completion that
// names a buffer is queued here until a receive() hands it out; the recv_buffer
// gives it back to the backend when dropped. Rules:
//  - The op is in flight until a completion without `more` (DESIGN.md §4);
//    the state holds a reference to itself (`self`) until then, so the socket
//    object may go away first. Only a receive() re-arms, never the callback (it
//    runs inside the backend's CQ drain).
//  - At most `queue_cap` buffers wait per socket: past that the op is cancelled,
//    so one slow reader cannot drain the ring every connection shares. The next
//    receive() that finds the queue empty re-arms.
//  - -ENOBUFS (ring dry) ends the op. The next receive() does one plain recv into
//    a pooled block (so it makes progress without spinning on an empty ring) and
//    re-arms the multishot after it.
//  - EOF (res 0) and errors end the op; they are delivered after queued data.
//
// io_uring without buffer rings: recv into a pooled block, trying first and
// waiting with io_uring's poll on EAGAIN, so a waiting socket holds no block either.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/runtime/event.hpp>
#include <atomic>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "io/backend.hpp"

namespace eddy::detail {

namespace {

constexpr std::size_t queue_cap = 8;

// The receive blocks of this thread's plain-recv paths (a loop is owned by one
// thread): the same pool class the readiness engine fills its receives from.
thread_local block_pool pool(16u << 20, 1u << 20);

void release_ring(void* ring, std::byte*, unsigned id) noexcept {
  static_cast<buffer_ring*>(ring)->recycle(id);
}

// One plain recv into a pooled block of up to `want` bytes: the buffer, an empty
// one at EOF, or -errno in `err` (-EAGAIN: nothing there yet).
recv_buffer recv_pooled_once(int fd, std::size_t want, int& err) {
  const int id = pool.take(want);
  if (id < 0) {
    err = -ENOBUFS;
    return {};
  }
  std::byte* b = pool.data(static_cast<unsigned>(id));
  for (;;) {
    const ssize_t r = ::recv(fd, b, want, MSG_DONTWAIT);
    if (r > 0) {
      err = 0;
      return recv_buffer(b, static_cast<std::size_t>(r), &release_ring, &pool,
                         static_cast<unsigned>(id));
    }
    const int e = errno;
    if (r < 0 && e == EINTR) continue;
    pool.recycle(static_cast<unsigned>(id));
    err = r == 0 ? 0 : -e;
    return {};
  }
}

[[noreturn]] void fail(int err) {
  throw std::system_error(err, std::system_category(), "eddy: recv");
}

// io_uring without buffer rings: try, then wait with a poll, so a waiting socket
// holds no block. The read size follows the traffic as the readiness engine's does.
task<recv_buffer> receive_pooled(int fd, loop& l, std::uint32_t* rx_size, std::size_t limit) {
  for (;;) {
    std::size_t want = *rx_size != 0 ? *rx_size : block_pool::min_block;
    if (want > limit) want = limit;
    int err = 0;
    recv_buffer b = recv_pooled_once(fd, want, err);
    if (!b.empty()) {
      if (b.size() == want && want < limit)
        *rx_size = static_cast<std::uint32_t>(want * 2 < limit ? want * 2 : limit);
      else if (b.size() < want / 8 && want > block_pool::min_block)
        *rx_size = static_cast<std::uint32_t>(want / 2);
      co_return b;
    }
    if (err == 0) co_return recv_buffer{};
    if (err != -EAGAIN && err != -EWOULDBLOCK) fail(-err);
    (void)co_await size_awaiter(l, "eddy: recv (poll)", op_code::poll, fd, nullptr, 0, POLLIN);
  }
}

}  // namespace

struct receiver_state {
  struct chunk {
    std::byte* data;
    unsigned id;
    unsigned len;
  };
  std::atomic<std::uint32_t> refs{1};  // receiver_ref's count
  int fd = -1;
  loop* l = nullptr;
  buffer_ring* ring = nullptr;
  io_op op{};
  receiver_ref self;  // while the op is in flight
  // A vector, not a deque: an idle socket's state must stay small (libstdc++'s
  // deque allocates about 600 bytes up front). Drained from `qhead`.
  std::vector<chunk> q;
  // 32 bits each (an idle connection's state stays one malloc size class lower):
  // limit <= 4 MiB (loop_options::recv_limit), so qbytes < 2 * limit + one chunk.
  std::uint32_t qhead = 0;
  std::uint32_t qbytes = 0;  // bytes queued
  std::uint32_t limit = 0;   // the loop's recv_limit, or the socket's lower one
  int err = 0;
  bool eof = false;
  bool nobufs = false;
  bool closed = false;
  event wake;  // set by each completion, the final one included (close() waits on it too)

  ~receiver_state() { recycle_queue(); }
  bool armed() const noexcept { return op.state == op_state::in_flight; }
  std::size_t queued() const noexcept { return q.size() - qhead; }
  chunk pop() noexcept {
    const chunk c = q[qhead++];
    qbytes -= c.len;
    if (qhead == q.size()) {
      q.clear();
      qhead = 0;
    }
    return c;
  }
  void recycle_queue() noexcept {
    if (l != nullptr && !l->is_closed())
      for (std::size_t i = qhead; i < q.size(); ++i) ring->recycle(q[i].id);
    q.clear();
    qhead = 0;
    qbytes = 0;
  }
  void arm() {
    // The read size the backend learnt survives a re-arm (after the queue cap or
    // a dry ring), so a stream does not start again from the smallest size.
    const unsigned learnt = op.rx_size;
    op = io_op{};
    op.rx_size = learnt;
    op.code = op_code::recv_multi;
    op.fd = fd;
    op.len = static_cast<unsigned>(limit);
    op.complete = &on_cqe;
    receiver_retain(this);
    self = receiver_ref(this);
    if (detail::loop_io(*l).submit(op)) {
      self.reset();
      err = op.res < 0 ? -op.res : EINVAL;
    }
  }
  static void on_cqe(io_op* o) noexcept {
    receiver_state* s = outer_of(o, &receiver_state::op);
    const int res = o->res;
    if (o->has_buffer) {
      const unsigned id = o->buffer_id;
      if (res > 0 && !s->closed) {
        std::byte* d = static_cast<std::byte*>(o->aux);
        const auto n = static_cast<unsigned>(res);
        chunk* last = s->queued() != 0 ? &s->q.back() : nullptr;
        if (last != nullptr && last->id == id && last->data + last->len == d &&
            last->len + static_cast<std::size_t>(n) <= s->limit) {
          // The next piece of the same incrementally consumed buffer, right after
          // the one still queued: hand both over as one chunk (one wake-up of the
          // reader, one send in an echo). The buffer stays out while the merged
          // chunk is held, so this piece's own reference is dropped now.
          last->len += n;
          s->ring->recycle(id);
        } else {
          s->q.push_back({d, id, n});
        }
        s->qbytes += static_cast<std::uint32_t>(res);
      } else
        s->ring->recycle(id);
    }
    if (res == 0)
      s->eof = true;
    else if (res == -ENOBUFS)
      s->nobufs = true;
    else if (res < 0 && res != -ECANCELED)
      s->err = -res;
    const bool final = !o->more;
    s->wake.set();
    // A slow reader stops receiving (the kernel's socket buffer holds the rest)
    // once a few chunks or twice the receive limit wait, whichever comes first.
    if (!final && (s->queued() >= queue_cap || s->qbytes >= 2 * s->limit) && !o->cancel_requested) detail::loop_io(*s->l).cancel(*o);
    if (final) {
      receiver_ref keep = std::move(s->self);  // may free s on return
    }
  }
};

void receiver_retain(receiver_state* s) noexcept { s->refs.fetch_add(1, std::memory_order_relaxed); }

void receiver_release(receiver_state* s) noexcept {
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete s;
}

namespace {

// The ring ran dry (-ENOBUFS ended the multishot op): one plain recv, waiting
// for readiness if need be, makes progress without spinning on an empty ring.
// Its own coroutine, so that the poll's op is in this rare frame only and not in
// every waiting receive's (an idle connection's receive frame is part of its RSS).
task<recv_buffer> receive_dry(receiver_ref s) {
  int e = 0;
  for (;;) {
    recv_buffer b = recv_pooled_once(s->fd, block_pool::min_block, e);
    if (!b.empty()) co_return b;
    if (e == 0) {
      s->eof = true;
      co_return recv_buffer{};
    }
    if (e != -EAGAIN && e != -EWOULDBLOCK) fail(-e);
    (void)co_await size_awaiter(*s->l, "eddy: recv (poll)", op_code::poll, s->fd, nullptr, 0,
                                POLLIN);
    if (s->closed) throw cancelled_error{};
  }
}

task<recv_buffer> receive_ring(receiver_ref s) {
  for (;;) {
    if (s->queued() != 0) {
      const receiver_state::chunk c = s->pop();
      co_return recv_buffer(c.data, c.len, &release_ring, s->ring, c.id);
    }
    if (s->err != 0) fail(std::exchange(s->err, 0));
    if (s->eof) co_return recv_buffer{};
    if (s->closed) fail(EBADF);
    if (!s->armed()) {
      if (s->nobufs) {
        s->nobufs = false;
        co_return co_await receive_dry(s);
      }
      s->arm();
      continue;
    }
    s->wake.clear();
    co_await s->wake.wait();
    // Closed under us: like any op in flight on a closed fd, a cancellation.
    if (s->closed) throw cancelled_error{};
  }
}

}  // namespace

task<recv_buffer> stream_socket::receive() {
  loop& l = loop::current();
  std::size_t limit = detail::loop_io(l).recv_limit();
  if (rx_limit_ != 0 && rx_limit_ < limit)
    limit = rx_limit_ < block_pool::min_block ? block_pool::min_block : rx_limit_;
  if (!rx_) {
    buffer_ring* ring = detail::loop_io(l).caps().multishot_recv ? detail::loop_io(l).recv_buffers() : nullptr;
    // Made on the pooled path too (io_uring before 6.1), so that the rule "one
    // way of reading per socket" (read_some refused after receive) is the same
    // on every kernel.
    rx_ = receiver_ref(new receiver_state);
    rx_->l = &l;
    rx_->limit = static_cast<std::uint32_t>(limit);
    rx_->fd = fd_.get();
    rx_->ring = ring;
  }
  if (rx_->ring == nullptr) return receive_pooled(fd_.get(), l, &rx_size_, limit);
  return receive_ring(rx_);
}

recv_buffer stream_socket::try_receive() noexcept {
  // Only the multishot path queues; the plain-recv path (io_uring without a
  // buffer ring) holds nothing between calls, and a speculative recv here would
  // cost a system call that usually finds nothing.
  if (!rx_ || rx_->ring == nullptr || rx_->queued() == 0 || rx_->closed) return {};
  const receiver_state::chunk c = rx_->pop();
  return recv_buffer(c.data, c.len, &release_ring, rx_->ring, c.id);
}

void stream_socket::mixed_reads() {
  throw std::logic_error(
      "eddy: read_some/release after receive(): receive() owns the socket's incoming bytes; "
      "use one way of reading per socket");
}

void stream_socket::drop_receiver() noexcept {
  if (!rx_) return;
  receiver_ref s = std::move(rx_);
  s->closed = true;
  s->wake.set();
  // close_now cancels a multishot op still armed. A destructor cannot await its
  // final CQE and must not wait for it (a blocking wait in a noexcept destructor
  // can throw, and stalls the loop): the op holds the state (`self`) until that
  // CQE arrives in a later iteration, or in loop::close, which reaps such ops.
  fd_.reset();
  s->recycle_queue();
}

stream_socket& stream_socket::operator=(stream_socket&& o) noexcept {
  if (this != &o) {
    drop_receiver();
    fd_ = std::move(o.fd_);
    rx_ = std::move(o.rx_);
    rx_size_ = o.rx_size_;
    rx_limit_ = o.rx_limit_;
  }
  return *this;
}

stream_socket::~stream_socket() {
  drop_receiver();
}

task<void> stream_socket::close() {
  if (!fd_) co_return;  // idempotent, as asyncio's close()
  receiver_ref s = std::move(rx_);
  if (s) {
    s->closed = true;
    s->wake.set();
  }
  co_await fd_.close();
  if (s) {
    while (s->armed()) {
      s->wake.clear();
      co_await s->wake.wait();
    }
    s->recycle_queue();
  }
}

}  // namespace eddy::detail
