// See readiness_engine.hpp for the protocol and why it makes no extra system call.
#include "io/readiness/readiness_engine.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "io/readiness/fd_registry.hpp"

namespace eddy::detail {

readiness_engine::~readiness_engine() { retire(); }

void readiness_engine::retire() noexcept {
  std::vector<int> closes;
  {
    std::lock_guard<std::mutex> g(registry_lock());
    if (retired_) return;
    retired_ = true;
    fds_.for_each([this](int fd, const fd_state& st) {
      if (st.watched && !st.unowned) registry_release(fd, this);
    });
    std::lock_guard<std::mutex> r(remote_mu_);
    closes.swap(remote_closes_);
    remote_pending_.store(false, std::memory_order_relaxed);
  }
  for (int fd : closes) (void)close_fd(fd);
}

bool readiness_engine::queue_remote_close(int fd) noexcept {
  // Under the registry lock (registry_hand_off), so retired_ is stable here.
  if (retired_) return false;
  try {
    std::lock_guard<std::mutex> g(remote_mu_);
    remote_closes_.push_back(fd);
  } catch (...) {
    return false;  // out of memory: the caller closes fd where it is
  }
  remote_pending_.store(true, std::memory_order_release);
  mech_.wake_owner();
  return true;
}

void readiness_engine::take_remote_closes() noexcept {
  std::vector<int> closes;
  {
    std::lock_guard<std::mutex> g(remote_mu_);
    closes.swap(remote_closes_);
    remote_pending_.store(false, std::memory_order_relaxed);
  }
  for (int fd : closes) (void)close_fd(fd);
}

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
  return fds_.get(fd);
}

void readiness_engine::finish(io_op& op, int res) noexcept {
  op.res = res;
  op.more = false;
  op.has_buffer = false;
  op.state = op_state::done;
  in_flight_.out(op);
  op.complete(&op);
}

bool readiness_engine::enqueue(int fd, dir d, io_op& op) {
  fd_state& st = state(fd);
  // A watch is ours only while the registry says so: if the fd was since watched
  // by another loop (the stream moved there) and closed there, this number may
  // name a new file that our old registration does not cover. End it and watch
  // afresh (one atomic load; no system call unless the watch is stale).
  if (st.watched && !st.unowned && !registry_owned_by(fd, this)) end_watch(fd, st);
  if (st.unowned) {
    // An owned op (unowned polls never come here while the watch is theirs) on a
    // number that unowned polls watch: the watch is current (its polls wait now)
    // and becomes an owned one, kept until eddy closes fd.
    st.unowned = false;
    registry_claim(fd, this);
  }
  if (!st.watched) {
    const int r = st.lingering ? mech_.watch_unowned(fd, st.gen, true) : mech_.watch(fd, st.gen);
    if (r < 0) return complete_inline(op, r);
    st.watched = true;
    st.lingering = false;
    registry_claim(fd, this);
    if (r == watch_took_over) {
      // The registration belonged to an earlier fd of the same file (a dup whose
      // number came back); its edges are spent, so look now instead of waiting.
      try {
        deferred_.push_back({fd, st.gen});
      } catch (...) {
        st.readable = st.writable = true;  // the next event or submit retries
      }
    }
  }
  st.lists[d].push_back(&op);
  op.state = op_state::in_flight;
  in_flight_.in(op);
  if (level_) mech_.want(fd, waiting(st));
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
    if (op->flags & POLLPRI) dirs |= ready_pri;
  }
  return dirs;
}

unsigned readiness_engine::waiting(int fd) const noexcept {
  const fd_state* st = fds_.find(fd);
  return st != nullptr && st->watched ? waiting(*st) : 0;
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
  // A splice may move to its output's list from inside drain(), which cannot
  // allocate (noexcept): make that state now.
  if (op.code == op_code::splice && op.aux_fd >= 0) (void)state(op.aux_fd);
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
    const bool owned = !enqueue(op.fd, d, op);
    fd_state& now = state(op.fd);
    if (owned && (now.readable || now.read_closed)) deferred_.push_back({op.fd, now.gen});
    return !owned;
  }
  bool& ready_flag = d == dir_in ? st.readable : st.writable;
  if (l.empty() && (ready_flag || (d == dir_in && st.read_closed))) {
    const int r = attempt_op(op);
    if (r != -EAGAIN) return complete_inline(op, r);
    if (op.code == op_code::splice && splice_side(op) == dir_out) {
      // Input ready, output full: wait for room on the output.
      if (op.aux_fd < 0) return complete_inline(op, -EBADF);
      state(op.aux_fd).writable = false;
      return enqueue(op.aux_fd, dir_out, op);
    }
    ready_flag = false;
  }
  return enqueue(op.fd, d, op);
}

readiness_engine::dir readiness_engine::splice_side(const io_op& op) noexcept {
  pollfd p[2] = {{op.fd, POLLIN, 0}, {op.aux_fd, POLLOUT, 0}};
  if (::poll(p, 2, 0) < 0) return dir_in;
  const bool in_ok = (p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  const bool out_ok = (p[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0;
  return in_ok && !out_ok ? dir_out : dir_in;
}

bool readiness_engine::submit_unowned_poll(fd_state& st, io_op& op) {
  // Nothing known of the number is trusted (see the header): the first poll
  // registers whatever file fd names now, and the kernel reports its current
  // state in the next wait, so no probe either.
  if (!st.watched) {
    const int r = mech_.watch_unowned(op.fd, st.gen, st.lingering);
    if (r < 0) return complete_inline(op, r);
    st.watched = true;
    st.unowned = true;
    st.lingering = false;
    st.readable = st.writable = false;
    st.read_closed = false;
    if (r == watch_took_over) {
      try {
        deferred_.push_back({op.fd, st.gen});
      } catch (...) {
        // The mechanism reports the current state after a watch anyway.
      }
    }
  }
  st.lists[dir_poll].push_back(&op);
  op.state = op_state::in_flight;
  in_flight_.in(op);
  if (level_) mech_.want(op.fd, waiting(st));
  return false;
}

void readiness_engine::end_unowned_watch(int fd, fd_state& st) noexcept {
  const bool keep = mech_.keeps_unowned();
  if (!keep) mech_.forget(fd);
  const std::uint32_t next = st.gen + 1;
  st = fd_state{};
  st.gen = next;
  st.lingering = keep;
}

bool readiness_engine::submit_poll(fd_state& st, io_op& op) {
  // An unowned fd's polls share a watch only with each other, or join an owned
  // watch that is there (eddy watches the number for ops of its own).
  if (op.len == poll_fd_unowned && (!st.watched || st.unowned)) return submit_unowned_poll(st, op);
  // A fresh watch reports the current state in the next wait: no probe needed.
  // Otherwise the engine's flags may be stale (a read outside eddy, say), so if
  // they claim readiness, ask the kernel once.
  const bool wants_in = (op.flags & (POLLIN | POLLRDHUP)) != 0;
  const bool wants_out = (op.flags & POLLOUT) != 0;
  // Urgent data is not tracked (its edge may have come while nobody polled for
  // it): a watched fd is always asked.
  const bool wants_pri = (op.flags & POLLPRI) != 0;
  if (st.watched &&
      (wants_pri || (wants_in && (st.readable || st.read_closed)) || (wants_out && st.writable))) {
    pollfd p{op.fd, static_cast<short>(op.flags), 0};
    const int r = ::poll(&p, 1, 0);
    if (r > 0) return complete_inline(op, p.revents);
    if (r < 0) return complete_inline(op, -errno);
    if (wants_in) st.readable = false;
    if (wants_out) st.writable = false;
  }
  return enqueue(op.fd, dir_poll, op);
}

void readiness_engine::cancel(io_op& op) noexcept {
  if (op.state != op_state::in_flight) return;
  op.cancel_requested = true;
  op_list* l = &fds_[op.fd].lists[direction(op)];
  if (fd_state* aux = op.code == op_code::splice ? fds_.find(op.aux_fd) : nullptr) {
    // A splice waits on its input or its output; the lists are short.
    op_list& out = aux->lists[dir_out];
    for (io_op* o = out.head; o != nullptr; o = o->link_next)
      if (o == &op) l = &out;
  }
  l->remove(&op);
  finish(op, -ECANCELED);
  end_unowned_if_idle(op.fd, fds_[op.fd]);
}

void readiness_engine::end_watch(int fd, fd_state& st) noexcept {
  for (op_list& l : st.lists) {
    while (io_op* op = l.pop_front()) {
      op->cancel_requested = true;
      finish(*op, -ECANCELED);
    }
  }
  if (st.watched || st.lingering) {
    mech_.forget(fd);
    if (!st.unowned) registry_release(fd, this);
  }
  const std::uint32_t next = st.gen + 1;
  st = fd_state{};
  st.gen = next;
}

int readiness_engine::close_fd(int fd) noexcept {
  if (fd < 0) return -EBADF;
  fd_state* mine = fds_.find(fd);
  if (registry_hand_off(fd, this)) {
    // Another loop watches fd: it ends the watch and closes. Whatever this
    // engine knew of the number is stale.
    if (mine != nullptr) end_watch(fd, *mine);
    return 0;
  }
  if (mine != nullptr) end_watch(fd, *mine);
  // close() may fail with EINTR after releasing the fd (Linux); never retry it.
  return ::close(fd) == 0 ? 0 : -errno;
}

unsigned readiness_engine::receive_multi(fd_state& st, io_op& op) noexcept {
  unsigned delivered = 0;
  // Armed while it heads the fd's read list. Compared by address, never read
  // through `op`: a completion may cancel the op, and the final completion may
  // free what holds it.
  while (st.lists[dir_in].head == &op && (st.readable || st.read_closed)) {
    // The read size follows the traffic (asyncio's and libuv's habit): it doubles
    // when a read fills its block, up to op.len (the receive limit), and halves
    // when a read uses less than an eighth of it. A connection of small messages reads
    // into 16 KiB blocks as before; one that streams gets a few large reads.
    const std::size_t limit = op.len != 0 ? op.len : block_pool::min_block;
    std::size_t want = op.rx_size != 0 ? op.rx_size : block_pool::min_block;
    if (want > limit) want = limit;
    const int id = blocks_.take(want);
    if (id < 0) {
      st.lists[dir_in].remove(&op);
      finish(op, -ENOBUFS);
      return delivered + 1;
    }
    std::byte* b = blocks_.data(static_cast<unsigned>(id));
    ssize_t r;
    do {
      r = ::recv(op.fd, b, want, static_cast<int>(op.flags));
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
      const auto got = static_cast<std::size_t>(r);
      if (got == want) {
        if (want < limit) op.rx_size = static_cast<unsigned>(want * 2 < limit ? want * 2 : limit);
      } else {
        // Short read: the receive queue was empty when recv returned; later data
        // raises a new edge (see the header).
        st.readable = false;
        // Shrink only on a read far below the size: a stream whose reads come
        // in at half the size would otherwise flip between two sizes and pay a
        // second recv each time it grows back.
        if (got < want / 8 && want > block_pool::min_block)
          op.rx_size = static_cast<unsigned>(want / 2);
      }
      op.res = static_cast<int>(r);
      op.more = true;
      op.has_buffer = true;
      op.buffer_id = static_cast<std::uint16_t>(id);
      op.aux = b;
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

void readiness_engine::drain(int fd, fd_state& st, op_list& l, bool& ready_flag) noexcept {
  while (io_op* op = l.head) {
    if (op->code == op_code::recv_multi) {
      receive_multi(st, *op);
      return;
    }
    const int r = attempt_op(*op);
    if (r == -EAGAIN) {
      if (op->code == op_code::splice) {
        // Waiting on the other side now (input drained, or output full)?
        const dir want = splice_side(*op);
        const bool here_is_output = op->fd != fd || &l != &st.lists[dir_in];
        if ((want == dir_out) != here_is_output) {
          l.remove(op);
          in_flight_.out(*op);  // enqueue counts it again
          const int other = want == dir_out ? op->aux_fd : op->fd;
          (void)enqueue(other, want, *op);
          if (op->state == op_state::done) {  // the watch failed: complete it
            in_flight_.in(*op);
            finish(*op, op->res);
          }
          continue;
        }
      }
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
  if (events & ready_pri) revents |= POLLPRI;
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

void readiness_engine::ready(int fd, std::uint32_t gen, unsigned events) noexcept {
  fd_state* slot = fds_.find(fd);
  if (slot == nullptr) return;
  fd_state& st = *slot;
  // An event of a watch that has ended (the number was closed, maybe reopened
  // since, in this same batch of events): dropped.
  if (!st.watched || st.gen != gen) return;
  if (events & (ready_rdhup | ready_hangup | ready_error)) st.read_closed = true;
  if (events & (ready_read | ready_error | ready_hangup | ready_rdhup)) {
    st.readable = true;
    drain(fd, st, st.lists[dir_in], st.readable);
  }
  if (events & (ready_write | ready_error | ready_hangup)) {
    st.writable = true;
    drain(fd, st, st.lists[dir_out], st.writable);
  }
  if (!st.lists[dir_poll].empty()) {
    complete_polls(st, events);
    end_unowned_if_idle(fd, st);
  }
}

unsigned readiness_engine::run_deferred() noexcept {
  unsigned delivered = 0;
  std::vector<deferred_fd> fds;
  fds.swap(deferred_);
  for (const deferred_fd& d : fds) {
    fd_state& st = fds_[d.fd];
    if (!st.watched || st.gen != d.gen) continue;  // closed since
    const std::size_t before = in_flight_.total();
    // Whatever waits on the fd tries now; a probe that finds nothing leaves the
    // fd marked not ready, as an EAGAIN would. (ready() with every direction
    // claimed; poll ops are answered by poll(2) itself.)
    probe(d.fd);
    delivered += static_cast<unsigned>(before - in_flight_.total());
    if (io_op* op = st.lists[dir_in].head; op != nullptr && op->code == op_code::recv_multi)
      delivered += receive_multi(st, *op);
  }
  fds.clear();
  if (deferred_.empty()) deferred_.swap(fds);  // keep the capacity
  return delivered;
}

void readiness_engine::probe(int fd) noexcept {
  fd_state& st = fds_[fd];
  if (!st.lists[dir_in].empty() && st.lists[dir_in].head->code != op_code::recv_multi) {
    st.readable = true;
    drain(fd, st, st.lists[dir_in], st.readable);
  } else if (st.lists[dir_in].empty()) {
    st.readable = true;
  }
  if (!st.lists[dir_out].empty()) {
    st.writable = true;
    drain(fd, st, st.lists[dir_out], st.writable);
  } else {
    st.writable = true;
  }
  op_list& polls = st.lists[dir_poll];
  for (io_op* op = polls.head; op != nullptr;) {
    io_op* next = op->link_next;
    pollfd p{fd, static_cast<short>(op->flags), 0};
    if (::poll(&p, 1, 0) > 0) {
      polls.remove(op);
      finish(*op, p.revents);
    }
    op = next;
  }
  end_unowned_if_idle(fd, st);
}

}  // namespace eddy::detail
