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
#include <memory>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "io/backend.hpp"

namespace eddy::detail {

namespace {

constexpr std::size_t queue_cap = 8;
constexpr std::size_t block_size = 16 * 1024;
constexpr std::size_t pool_cap = 256;

// Per-thread cache of receive blocks (a loop is owned by one thread).
struct block_pool {
  std::vector<std::byte*> free;
  ~block_pool() {
    for (std::byte* b : free) delete[] b;
  }
  std::byte* take() {
    if (free.empty()) return new std::byte[block_size];
    std::byte* b = free.back();
    free.pop_back();
    return b;
  }
  void give(std::byte* b) noexcept {
    if (free.size() < pool_cap)
      free.push_back(b);
    else
      delete[] b;
  }
};
thread_local block_pool pool;

void release_block(void*, std::byte* base, unsigned) noexcept {
  pool.give(base);
}
void release_ring(void* ring, std::byte*, unsigned id) noexcept {
  static_cast<buffer_ring*>(ring)->recycle(id);
}

[[noreturn]] void fail(int err) {
  throw std::system_error(err, std::system_category(), "eddy: recv");
}

task<recv_buffer> receive_pooled(int fd, loop& l) {
  for (;;) {
    std::byte* b = pool.take();
    const ssize_t r = ::recv(fd, b, block_size, MSG_DONTWAIT);
    if (r > 0) co_return recv_buffer(b, static_cast<std::size_t>(r), &release_block, nullptr, 0);
    const int e = errno;
    pool.give(b);
    if (r == 0) co_return recv_buffer{};
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) fail(e);
    (void)co_await size_awaiter(l, "eddy: recv (poll)", op_code::poll, fd, nullptr, 0, POLLIN);
  }
}

}  // namespace

struct receiver_state : std::enable_shared_from_this<receiver_state> {
  struct chunk {
    unsigned id;
    unsigned len;
  };
  loop* l = nullptr;
  int fd = -1;
  buffer_ring* ring = nullptr;
  io_op op{};
  std::shared_ptr<receiver_state> self;
  // A vector, not a deque: an idle socket's state must stay small (libstdc++'s
  // deque allocates about 600 bytes up front). Drained from `qhead`.
  std::vector<chunk> q;
  std::size_t qhead = 0;
  int err = 0;
  bool eof = false;
  bool nobufs = false;
  bool closed = false;
  event wake;        // set by each completion
  event final_seen;  // set by the final completion

  ~receiver_state() { recycle_queue(); }
  bool armed() const noexcept { return op.state == op_state::in_flight; }
  std::size_t queued() const noexcept { return q.size() - qhead; }
  chunk pop() noexcept {
    const chunk c = q[qhead++];
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
  }
  void arm() {
    op = io_op{};
    op.code = op_code::recv_multi;
    op.fd = fd;
    op.complete = &on_cqe;
    self = shared_from_this();
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
      if (res > 0 && !s->closed)
        s->q.push_back({id, static_cast<unsigned>(res)});
      else
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
    if (!final && s->queued() >= queue_cap && !o->cancel_requested) detail::loop_io(*s->l).cancel(*o);
    if (final) {
      s->final_seen.set();
      std::shared_ptr<receiver_state> keep = std::move(s->self);  // may free s on return
    }
  }
};

namespace {

task<recv_buffer> receive_ring(std::shared_ptr<receiver_state> s) {
  for (;;) {
    if (s->queued() != 0) {
      const receiver_state::chunk c = s->pop();
      co_return recv_buffer(s->ring->data(c.id), c.len, &release_ring, s->ring, c.id);
    }
    if (s->err != 0) fail(std::exchange(s->err, 0));
    if (s->eof) co_return recv_buffer{};
    if (s->closed) fail(EBADF);
    if (!s->armed()) {
      if (s->nobufs) {
        s->nobufs = false;
        std::byte* b = pool.take();
        int r;
        try {
          r = co_await raw_op_awaiter(*s->l, "eddy: recv", op_code::recv, s->fd, b, block_size);
        } catch (...) {
          pool.give(b);
          throw;
        }
        if (r > 0)
          co_return recv_buffer(b, static_cast<std::size_t>(r), &release_block, nullptr, 0);
        pool.give(b);
        if (r == 0) {
          s->eof = true;
          co_return recv_buffer{};
        }
        fail(-r);
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
  if (!rx_) {
    buffer_ring* ring = detail::loop_io(l).caps().multishot_recv ? detail::loop_io(l).recv_buffers() : nullptr;
    // Made on the pooled path too (io_uring before 6.1), so that the rule "one
    // way of reading per socket" (read_some refused after receive) is the same
    // on every kernel.
    rx_ = std::make_shared<receiver_state>();
    rx_->l = &l;
    rx_->fd = fd_.get();
    rx_->ring = ring;
  }
  if (rx_->ring == nullptr) return receive_pooled(fd_.get(), l);
  return receive_ring(rx_);
}

void stream_socket::mixed_reads() {
  throw std::logic_error(
      "eddy: read_some/release after receive(): receive() owns the socket's incoming bytes; "
      "use one way of reading per socket");
}

void stream_socket::drop_receiver() noexcept {
  if (!rx_) return;
  std::shared_ptr<receiver_state> s = std::move(rx_);
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
  }
  return *this;
}

stream_socket::~stream_socket() {
  drop_receiver();
}

task<void> stream_socket::close() {
  if (!fd_) co_return;  // idempotent, as asyncio's close()
  std::shared_ptr<receiver_state> s = std::move(rx_);
  if (s) {
    s->closed = true;
    s->wake.set();
  }
  co_await fd_.close();
  if (s) {
    while (s->armed()) {
      s->final_seen.clear();
      co_await s->final_seen.wait();
    }
    s->recycle_queue();
  }
}

}  // namespace eddy::detail
