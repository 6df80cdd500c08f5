// See readiness_engine.hpp for the protocol and why it makes no extra system call.
#include "io/readiness/readiness_engine.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace eddy::detail {

void readiness_engine::op_list::push(io_op* op) noexcept {
  op->link_next = nullptr;
  op->link_prev = tail;
  if (tail != nullptr)
    tail->link_next = op;
  else
    head = op;
  tail = op;
}

void readiness_engine::op_list::remove(io_op* op) noexcept {
  if (op->link_prev != nullptr)
    op->link_prev->link_next = op->link_next;
  else
    head = op->link_next;
  if (op->link_next != nullptr)
    op->link_next->link_prev = op->link_prev;
  else
    tail = op->link_prev;
  op->link_next = op->link_prev = nullptr;
}

readiness_engine::~readiness_engine() = default;

readiness_engine::dir readiness_engine::direction(const io_op& op) noexcept {
  switch (op.code) {
    case op_code::read:
    case op_code::readv:
    case op_code::accept:
    case op_code::recv:
    case op_code::recvmsg:
    case op_code::splice:
    case op_code::recv_multi:
      return dir_in;
    case op_code::write:
    case op_code::writev:
    case op_code::connect:
    case op_code::send:
    case op_code::sendmsg:
      return dir_out;
    case op_code::poll:
      return dir_poll;
    default:
      return dir_none;
  }
}

readiness_engine::fd_state& readiness_engine::state(int fd) {
  const auto i = static_cast<std::size_t>(fd);
  if (i >= fds_.size()) fds_.resize(i + 1 > fds_.size() * 2 ? i + 1 : fds_.size() * 2);
  return fds_[i];
}

void readiness_engine::finish(io_op& op, int res) noexcept {
  op.res = res;
  op.more = false;
  op.has_buffer = false;
  op.state = op_state::done;
  --in_flight_;
  op.complete(&op);
}

// Queues op behind the others of its direction, watching the fd first if this is
// its first wait. Returns false (submit's "owned"), or completes inline on error.
bool readiness_engine::enqueue(fd_state& st, op_list& l, io_op& op) {
  if (!st.watched) {
    if (const int r = mech_.watch(op.fd); r != 0) return complete_inline(op, r);
    st.watched = true;
  }
  l.push(&op);
  op.state = op_state::in_flight;
  ++in_flight_;
  if (level_) mech_.want(op.fd, waiting(st));
  return false;
}

unsigned readiness_engine::waiting(const fd_state& st) noexcept {
  unsigned dirs = 0;
  if (!st.lists[dir_in].empty()) dirs |= ready_read;
  if (!st.lists[dir_out].empty()) dirs |= ready_write;
  for (const io_op* op = st.lists[dir_poll].head; op != nullptr; op = op->link_next) {
    if (op->flags & POLLIN) dirs |= ready_read;
    if (op->flags & POLLOUT) dirs |= ready_write;
    if (op->flags & POLLRDHUP) dirs |= ready_rdhup;
  }
  return dirs;
}

unsigned readiness_engine::waiting(int fd) const noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return 0;
  const fd_state& st = fds_[static_cast<std::size_t>(fd)];
  return st.watched ? waiting(st) : 0;
}

bool readiness_engine::submit(io_op& op) {
  op.cancel_requested = false;
  op.more = false;
  op.has_buffer = false;
  switch (op.code) {
    case op_code::nop:
      return complete_inline(op, 0);
    case op_code::close:
      return complete_inline(op, close_fd(op.fd));
    case op_code::shutdown:
      return complete_inline(op, ::shutdown(op.fd, static_cast<int>(op.flags)) == 0 ? 0 : -errno);
    default:
      break;
  }
  // A file op would block the loop thread here (a regular file is always
  // "ready"): refuse it, and eddy::fs takes it to the blocking pool.
  if (is_file_op(op.code)) return complete_inline(op, -EOPNOTSUPP);
  const dir d = direction(op);
  if (d == dir_none) return complete_inline(op, -EINVAL);  // accept_multi: not offered
  if (op.fd < 0) return complete_inline(op, -EBADF);
  fd_state& st = state(op.fd);
  op.state = op_state::idle;
  if (d == dir_poll) return submit_poll(st, op);
  op_list& l = st.lists[d];
  if (op.code == op_code::recv_multi) {
    // Armed once and left armed; its first read happens in run_deferred (never
    // a completion from inside submit), before the loop next blocks.
    if (!l.empty()) return complete_inline(op, -EBUSY);
    // A FIN already seen counts as readable: its edge will not come again, so a
    // receive paused by the receiver's queue cap (cancelled after a short read
    // cleared `readable`) must find the EOF by reading, not by waiting.
    const bool owned = !enqueue(st, l, op);
    if (owned && (st.readable || st.read_closed)) deferred_.push_back(op.fd);
    return !owned;
  }
  bool& ready_flag = d == dir_in ? st.readable : st.writable;
  if (l.empty() && (ready_flag || (d == dir_in && st.read_closed))) {
    const int r = attempt_op(op);
    if (r != -EAGAIN) return complete_inline(op, r);
    ready_flag = false;
  }
  return enqueue(st, l, op);
}

bool readiness_engine::submit_poll(fd_state& st, io_op& op) {
  // A fresh watch reports the current state in the next wait: no probe needed.
  // Otherwise the engine's flags may be stale (a read outside eddy, say), so if
  // they claim readiness, ask the kernel once.
  const bool wants_in = (op.flags & (POLLIN | POLLRDHUP)) != 0;
  const bool wants_out = (op.flags & POLLOUT) != 0;
  if (st.watched && ((wants_in && (st.readable || st.read_closed)) || (wants_out && st.writable))) {
    pollfd p{op.fd, static_cast<short>(op.flags), 0};
    const int r = ::poll(&p, 1, 0);
    if (r > 0) return complete_inline(op, p.revents);
    if (r < 0) return complete_inline(op, -errno);
    if (wants_in) st.readable = false;
    if (wants_out) st.writable = false;
  }
  return enqueue(st, st.lists[dir_poll], op);
}

void readiness_engine::cancel(io_op& op) noexcept {
  if (op.state != op_state::in_flight) return;
  op.cancel_requested = true;
  fd_state& st = fds_[static_cast<std::size_t>(op.fd)];
  st.lists[direction(op)].remove(&op);
  finish(op, -ECANCELED);
}

int readiness_engine::close_fd(int fd) noexcept {
  if (fd < 0) return -EBADF;
  if (static_cast<std::size_t>(fd) < fds_.size()) {
    fd_state& st = fds_[static_cast<std::size_t>(fd)];
    for (op_list& l : st.lists) {
      while (io_op* op = l.head) {
        l.remove(op);
        op->cancel_requested = true;
        finish(*op, -ECANCELED);
      }
    }
    if (st.watched) mech_.forget(fd);
    st = fd_state{};
  }
  // close() may fail with EINTR after releasing the fd (Linux); never retry it.
  return ::close(fd) == 0 ? 0 : -errno;
}

unsigned readiness_engine::receive_multi(fd_state& st, io_op& op) noexcept {
  unsigned delivered = 0;
  // Armed while it heads the fd's read list. Compared by address, never read
  // through `op`: a completion may cancel the op, and the final completion may
  // free what holds it.
  while (st.lists[dir_in].head == &op && (st.readable || st.read_closed)) {
    const int id = blocks_.take();
    if (id < 0) {
      st.lists[dir_in].remove(&op);
      finish(op, -ENOBUFS);
      return delivered + 1;
    }
    std::byte* b = blocks_.data(static_cast<unsigned>(id));
    ssize_t r;
    do {
      r = ::recv(op.fd, b, block_pool::block_size, static_cast<int>(op.flags));
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
      // Short read: the receive queue was empty when recv returned; later data
      // raises a new edge (see the header).
      if (static_cast<std::size_t>(r) < block_pool::block_size) st.readable = false;
      op.res = static_cast<int>(r);
      op.more = true;
      op.has_buffer = true;
      op.buffer_id = static_cast<std::uint16_t>(id);
      ++delivered;
      op.complete(&op);  // may cancel op (the receiver's queue is full)
      continue;
    }
    blocks_.recycle(static_cast<unsigned>(id));
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      st.readable = false;
      break;
    }
    st.lists[dir_in].remove(&op);
    finish(op, r == 0 ? 0 : -errno);  // EOF or an error ends the op
    return delivered + 1;
  }
  return delivered;
}

void readiness_engine::drain(fd_state& st, op_list& l, bool& ready_flag) noexcept {
  while (io_op* op = l.head) {
    if (op->code == op_code::recv_multi) {
      receive_multi(st, *op);
      return;
    }
    const int r = attempt_op(*op);
    if (r == -EAGAIN) {
      ready_flag = false;
      return;
    }
    l.remove(op);
    finish(*op, r);
  }
}

void readiness_engine::complete_polls(fd_state& st, unsigned events) noexcept {
  unsigned revents = 0;
  if (events & ready_read) revents |= POLLIN;
  if (events & ready_write) revents |= POLLOUT;
  if (events & ready_error) revents |= POLLERR;
  if (events & ready_hangup) revents |= POLLHUP;
  if (events & ready_rdhup) revents |= POLLIN | POLLRDHUP;
  op_list& polls = st.lists[dir_poll];
  for (io_op* op = polls.head; op != nullptr;) {
    io_op* next = op->link_next;
    const unsigned rev = revents & (op->flags | POLLERR | POLLHUP);
    if (rev != 0) {
      polls.remove(op);
      finish(*op, static_cast<int>(rev));
    }
    op = next;
  }
}

void readiness_engine::ready(int fd, unsigned events) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
  fd_state& st = fds_[static_cast<std::size_t>(fd)];
  if (!st.watched) return;  // an event for a number closed since
  if (events & (ready_rdhup | ready_hangup | ready_error)) st.read_closed = true;
  if (events & (ready_read | ready_error | ready_hangup | ready_rdhup)) {
    st.readable = true;
    drain(st, st.lists[dir_in], st.readable);
  }
  if (events & (ready_write | ready_error | ready_hangup)) {
    st.writable = true;
    drain(st, st.lists[dir_out], st.writable);
  }
  if (!st.lists[dir_poll].empty()) complete_polls(st, events);
}

unsigned readiness_engine::run_deferred() noexcept {
  unsigned delivered = 0;
  std::vector<int> fds;
  fds.swap(deferred_);
  for (int fd : fds) {
    fd_state& st = fds_[static_cast<std::size_t>(fd)];
    if (io_op* op = st.lists[dir_in].head; op != nullptr && op->code == op_code::recv_multi)
      delivered += receive_multi(st, *op);
  }
  fds.clear();
  if (deferred_.empty()) deferred_.swap(fds);  // keep the capacity
  return delivered;
}

}  // namespace eddy::detail
