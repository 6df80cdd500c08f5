// eddy::stream: buffered reads with limits, buffered writes with water marks.
//
// Read side: one growable buffer, live bytes in [rbeg, rend). Every read fills it
// until the request can be answered, and consumes only when it returns: that is
// what makes the reads cancel-safe (a cancelled read_line leaves its partial line
// buffered). The buffer never holds more than the request needs plus one receive
// (read_limit + read_chunk for delimited reads). On sockets, bytes come from
// stream_socket::receive() (io_uring: the multishot recv on the provided-buffer
// ring) and are copied in, and the buffer is freed whenever it is emptied: a
// stream waiting for data holds no read buffer at all. Pipes read into the buffer.
//
// Write side: `write` appends to `pending`; a background task (the flusher, at
// most one per stream, spawned on demand) swaps `pending` into `sending` and sends
// from there. The kernel reads `sending` while a send is in flight, so `write`
// never touches it: appending to `pending` may reallocate freely. The flusher
// holds a reference to the state, so destroying the stream mid-send is safe: the
// fd is closed (cancelling the send), the flusher resumes and lets go.
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <eddy/io/stream.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/loop.hpp>
#include <stdexcept>
#include <string>
#include <system_error>

namespace eddy {

struct stream_state {
  loop* l = nullptr;
  detail::stream_socket sock;  // when is_socket
  unique_fd fd;                // otherwise (a pipe end)
  bool is_socket = false;
  stream_options o;
  // read side: uninitialized storage (a vector would zero, and so touch, every page)
  std::unique_ptr<std::byte[]> rb;
  std::size_t rcap = 0, rbeg = 0, rend = 0;
  bool eof = false;
  // write side
  std::vector<std::byte> pending, sending;
  std::size_t spos = 0;
  std::exception_ptr werr;
  bool flushing = false;
  event progress;  // set by the flusher after each send, on error and when done

  std::size_t rsize() const noexcept { return rend - rbeg; }
  std::size_t wsize() const noexcept { return pending.size() + (sending.size() - spos); }
  const char* rdata() const noexcept { return reinterpret_cast<const char*>(rb.get() + rbeg); }
  const std::byte* rbytes() const noexcept { return rb.get() + rbeg; }
  int fdn() const noexcept { return is_socket ? sock.fd() : fd.get(); }
  bool open() const noexcept { return fdn() >= 0; }
  void consume(std::size_t n) noexcept {
    rbeg += n;
    if (rbeg == rend) {
      rbeg = rend = 0;
      if (is_socket || rcap > 2 * o.read_chunk) {
        rb.reset();
        rcap = 0;
      }
    }
  }
  void make_room(std::size_t n) {
    if (rcap - rend >= n) return;
    if (rbeg > 0) {
      std::memmove(rb.get(), rb.get() + rbeg, rsize());
      rend -= rbeg;
      rbeg = 0;
    }
    if (rcap - rend < n) {
      const std::size_t cap = std::max(rcap * 2, rend + n);
      std::unique_ptr<std::byte[]> bigger(new std::byte[cap]);
      if (rend != 0) std::memcpy(bigger.get(), rb.get(), rend);
      rb = std::move(bigger);
      rcap = cap;
    }
  }
};

namespace {

void check(const stream_options& o) {
  constexpr std::size_t gib = std::size_t{1} << 30;
  auto bad = [](const char* what) {
    throw std::invalid_argument(std::string("eddy::stream_options: ") + what);
  };
  if (o.read_limit == 0 || o.read_limit > gib) bad("read_limit must be 1..1 GiB");
  if (o.max_read_exact > gib) bad("max_read_exact must be at most 1 GiB");
  if (o.read_chunk == 0 || o.read_chunk > gib) bad("read_chunk must be 1..1 GiB");
  if (o.low_water == 0 || o.low_water > o.high_water) bad("need 1 <= low_water <= high_water");
  if (o.high_water > o.max_write_buffer || o.max_write_buffer > gib)
    bad("need high_water <= max_write_buffer <= 1 GiB");
}

std::shared_ptr<stream_state> make_state(const stream_options& o) {
  check(o);
  auto s = std::make_shared<stream_state>();
  s->l = &loop::current();
  s->o = o;
  return s;
}

std::shared_ptr<stream_state> make_state(detail::stream_socket sock, const stream_options& o) {
  if (!sock) throw std::invalid_argument("eddy::stream: empty socket");
  auto s = make_state(o);
  s->is_socket = true;
  s->sock = std::move(sock);
  s->sock.set_receive_limit(o.read_chunk);
  return s;
}

std::shared_ptr<stream_state> make_state(unique_fd fd, const stream_options& o) {
  if (!fd) throw std::invalid_argument("eddy::stream: empty fd");
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && S_ISSOCK(st.st_mode))
    return make_state(detail::stream_socket(std::move(fd)), o);
  auto s = make_state(o);
  s->fd = std::move(fd);
  return s;
}

// Receives once into the buffer; false at end of stream.
task<bool> fill(std::shared_ptr<stream_state> s) {
  if (s->eof) co_return false;
  std::size_t n = 0;
  if (s->is_socket) {
    recv_buffer b = co_await s->sock.receive();
    n = b.size();
    if (n != 0) {
      // Amortize growth only when bytes are already waiting (a line being built).
      s->make_room(s->rsize() == 0 ? n : std::max(n, s->o.read_chunk));
      std::memcpy(s->rb.get() + s->rend, b.data().data(), n);
    }
  } else {
    s->make_room(s->o.read_chunk);
    n = co_await detail::size_awaiter(*s->l, "eddy::stream: read", detail::op_code::read,
                                      s->fd.get(), s->rb.get() + s->rend,
                                      detail::clamp_len(s->rcap - s->rend));
  }
  if (n == 0) {
    s->eof = true;
    co_return false;
  }
  s->rend += n;
  co_return true;
}

task<void> flusher(std::shared_ptr<stream_state> s) {
  try {
    for (;;) {
      if (s->spos == s->sending.size()) {
        s->sending.clear();
        s->spos = 0;
        if (s->pending.empty()) break;
        std::swap(s->sending, s->pending);
      }
      const std::span<const std::byte> rest(s->sending.data() + s->spos,
                                            s->sending.size() - s->spos);
      const auto code = s->is_socket ? detail::op_code::send : detail::op_code::write;
      s->spos += co_await detail::size_awaiter(*s->l, "eddy::stream: write", code, s->fdn(),
                                               const_cast<std::byte*>(rest.data()),
                                               detail::clamp_len(rest.size()));
      s->progress.set();
    }
  } catch (const cancelled_error&) {
    s->werr = std::make_exception_ptr(
        std::system_error(ECANCELED, std::system_category(), "eddy::stream: write cancelled"));
  } catch (...) {
    s->werr = std::current_exception();
  }
  if (s->werr) {
    s->pending.clear();
    s->sending.clear();
    s->spos = 0;
  }
  s->flushing = false;
  s->progress.set();
}

void rethrow_write_error(const stream_state& s) {
  if (s.werr) std::rethrow_exception(s.werr);
}

// Where the limit came from, for the error: the call's argument, or the option.
const char* limit_source(std::size_t arg) noexcept {
  return arg == 0 ? " (stream_options::read_limit)" : " (the limit argument)";
}

std::string quote_limit(const char* what, std::size_t limit, std::size_t arg) {
  return std::string("eddy::stream::") + what + ": no delimiter within the limit of " +
         std::to_string(limit) + " bytes" + limit_source(arg);
}

}  // namespace

stream::stream() noexcept = default;
stream::stream(tcp_stream s, stream_options o) : s_(make_state(s.release(), o)) {}
stream::stream(unix_stream s, stream_options o) : s_(make_state(s.release(), o)) {}
stream::stream(unique_fd fd, stream_options o) : s_(make_state(std::move(fd), o)) {}
stream::stream(stream&&) noexcept = default;
stream& stream::operator=(stream&& o) noexcept {
  if (this != &o) {
    abort();
    s_ = std::move(o.s_);
  }
  return *this;
}
stream::~stream() {
  abort();
}

void stream::abort() noexcept {
  if (s_ && s_->open()) {
    s_->pending.clear();
    // Cancels the flusher's send and the receive, if any.
    if (s_->is_socket)
      s_->sock = detail::stream_socket();
    else
      s_->fd.reset();
  }
}

int stream::fd() const noexcept {
  return s_ ? s_->fdn() : -1;
}
const stream_options& stream::options() const noexcept {
  static const stream_options defaults{};
  return s_ ? s_->o : defaults;
}
std::size_t stream::write_buffer_size() const noexcept {
  return s_ ? s_->wsize() : 0;
}
std::size_t stream::read_buffer_size() const noexcept {
  return s_ ? s_->rsize() : 0;
}
bool stream::at_eof() const noexcept {
  return s_ && s_->eof && s_->rsize() == 0;
}

// The next received bytes go straight into `dst` (up to its size); what does not
// fit is kept in the read buffer. Returns the count, 0 at end of stream. Only
// with an empty read buffer. Sockets copy once out of the loop-lent buffer, pipes
// read into `dst` itself: no trip through the stream's own buffer either way.
task<std::size_t> read_direct(std::shared_ptr<stream_state> s, std::span<std::byte> dst) {
  if (s->eof) co_return 0;
  std::size_t n;
  if (s->is_socket) {
    recv_buffer b = co_await s->sock.receive();
    n = std::min(b.size(), dst.size());
    if (n != 0) std::memcpy(dst.data(), b.data().data(), n);
    if (b.size() > n) {
      const std::size_t rest = b.size() - n;
      s->make_room(rest);
      std::memcpy(s->rb.get() + s->rend, b.data().data() + n, rest);
      s->rend += rest;
    }
  } else {
    n = co_await detail::size_awaiter(*s->l, "eddy::stream: read", detail::op_code::read,
                                      s->fd.get(), dst.data(), detail::clamp_len(dst.size()));
  }
  if (n == 0) s->eof = true;
  co_return n;
}

task<std::size_t> stream::read_some(std::span<std::byte> buf) {
  auto s = s_;
  if (buf.empty()) co_return 0;
  if (s->rsize() == 0) co_return co_await read_direct(s, buf);
  const std::size_t n = std::min(buf.size(), s->rsize());
  std::memcpy(buf.data(), s->rbytes(), n);
  s->consume(n);
  co_return n;
}

task<void> stream::read_exact(std::span<std::byte> buf) {
  // Buffered bytes first, then receives straight into `buf` (one copy, at
  // read_some's speed whatever the size). Cancel safety holds as before: if a
  // receive throws, the bytes already placed in `buf` go back to the front of the
  // read buffer, so nothing is consumed.
  auto s = s_;
  std::size_t have = std::min(buf.size(), s->rsize());
  if (have != 0) {  // an empty read buffer may have no storage: memcpy(_, nullptr, 0) is UB
    std::memcpy(buf.data(), s->rbytes(), have);
    s->consume(have);
  }
  try {
    while (have < buf.size()) {
      const std::size_t n = co_await read_direct(s, buf.subspan(have));
      if (n == 0) {
        std::string partial(reinterpret_cast<const char*>(buf.data()), have);
        throw incomplete_read_error("eddy::stream::read_exact: end of stream after " +
                                        std::to_string(have) + " of " +
                                        std::to_string(buf.size()) + " bytes",
                                    std::move(partial));
      }
      have += n;
    }
  } catch (const incomplete_read_error&) {
    throw;
  } catch (...) {
    // Put back: [buf[0..have)) + what read_direct may have kept.
    const std::size_t kept = s->rsize();
    std::unique_ptr<std::byte[]> nb(new std::byte[have + kept]);
    std::memcpy(nb.get(), buf.data(), have);
    if (kept != 0) std::memcpy(nb.get() + have, s->rbytes(), kept);
    s->rb = std::move(nb);
    s->rcap = have + kept;
    s->rbeg = 0;
    s->rend = have + kept;
    throw;
  }
}

task<std::vector<std::byte>> stream::read_exact(std::size_t n) {
  if (n > s_->o.max_read_exact)
    throw stream_limit_error("eddy::stream::read_exact: " + std::to_string(n) +
                             " bytes exceeds max_read_exact (" +
                             std::to_string(s_->o.max_read_exact) + ")");
  std::vector<std::byte> out(n);
  co_await read_exact(std::span(out));
  co_return out;
}

task<std::string> stream::read_exact_string(std::size_t n) {
  if (n > s_->o.max_read_exact)
    throw stream_limit_error("eddy::stream::read_exact_string: " + std::to_string(n) +
                             " bytes exceeds max_read_exact (" +
                             std::to_string(s_->o.max_read_exact) + ")");
  std::string out(n, '\0');
  co_await read_exact(std::as_writable_bytes(std::span(out.data(), out.size())));
  co_return out;
}

task<std::string> stream::read_until(std::string delim, std::size_t limit) {
  auto s = s_;
  if (delim.empty()) throw std::invalid_argument("eddy::stream::read_until: empty delimiter");
  const std::size_t arg = limit;
  if (limit == 0) limit = s->o.read_limit;
  std::size_t searched = 0;  // bytes already known to hold no complete delimiter start
  for (;;) {
    const std::string_view have(s->rdata(), s->rsize());
    const auto at = have.find(delim, searched);
    if (at != std::string_view::npos) {
      const std::size_t len = at + delim.size();
      if (len > limit) throw stream_limit_error(quote_limit("read_until", limit, arg));
      std::string out(have.substr(0, len));
      s->consume(len);
      co_return out;
    }
    if (have.size() >= limit) throw stream_limit_error(quote_limit("read_until", limit, arg));
    searched = have.size() >= delim.size() ? have.size() - delim.size() + 1 : 0;
    if (!co_await fill(s)) {
      std::string partial(s->rdata(), s->rsize());
      s->consume(s->rsize());
      throw incomplete_read_error("eddy::stream::read_until: end of stream before the delimiter",
                                  std::move(partial));
    }
  }
}

task<std::string> stream::read_line(std::size_t limit) {
  auto s = s_;
  const std::size_t arg = limit;
  if (limit == 0) limit = s->o.read_limit;
  std::size_t searched = 0;
  for (;;) {
    const std::string_view have(s->rdata(), s->rsize());
    const auto at = have.find('\n', searched);
    if (at != std::string_view::npos) {
      if (at + 1 > limit)
        throw stream_limit_error("eddy::stream::read_line: line longer than the limit of " +
                                 std::to_string(limit) + " bytes" + limit_source(arg));
      std::string out(have.substr(0, at + 1));
      s->consume(at + 1);
      co_return out;
    }
    if (have.size() >= limit)
      throw stream_limit_error("eddy::stream::read_line: line longer than the limit of " +
                               std::to_string(limit) + " bytes" + limit_source(arg));
    searched = have.size();
    if (!co_await fill(s)) {
      std::string rest(s->rdata(), s->rsize());  // `have` may dangle: fill moved the buffer
      s->consume(s->rsize());
      co_return rest;
    }
  }
}

task<std::size_t> stream::discard_line() {
  auto s = s_;
  std::size_t dropped = 0;
  for (;;) {
    const std::string_view have(s->rdata(), s->rsize());
    const auto at = have.find('\n');
    const std::size_t n = at == std::string_view::npos ? have.size() : at + 1;
    s->consume(n);
    dropped += n;
    if (at != std::string_view::npos) co_return dropped;
    if (!co_await fill(s)) co_return dropped;
  }
}

task<std::span<const std::byte>> stream::peek(std::size_t n) {
  auto s = s_;
  if (n > s->o.read_limit)
    throw stream_limit_error("eddy::stream::peek: " + std::to_string(n) +
                             " bytes exceeds read_limit (" + std::to_string(s->o.read_limit) + ")");
  while (s->rsize() < n && co_await fill(s)) {
  }
  co_return std::span<const std::byte>(s->rbytes(), s->rsize());
}

void stream::write(std::span<const std::byte> data) {
  stream_state& s = *s_;
  rethrow_write_error(s);
  if (!s.open())
    throw std::system_error(EBADF, std::system_category(), "eddy::stream::write: stream is closed");
  if (data.empty()) return;
  if (s.wsize() + data.size() > s.o.max_write_buffer)
    throw stream_limit_error("eddy::stream::write: " + std::to_string(s.wsize() + data.size()) +
                             " bytes would pass max_write_buffer (" +
                             std::to_string(s.o.max_write_buffer) +
                             "); co_await drain() between writes");
  s.pending.insert(s.pending.end(), data.begin(), data.end());
  if (!s.flushing) {
    s.flushing = true;
    s.l->spawn(flusher(s_)).detach();
  }
}

task<void> stream::drain() {
  auto s = s_;
  rethrow_write_error(*s);
  if (s->wsize() <= s->o.high_water) co_return;
  while (s->wsize() > s->o.low_water && s->flushing) {
    s->progress.clear();
    co_await s->progress.wait();
  }
  rethrow_write_error(*s);
}

task<void> stream::flush() {
  auto s = s_;
  while (s->flushing) {
    s->progress.clear();
    co_await s->progress.wait();
  }
  rethrow_write_error(*s);
}

task<void> stream::shutdown_write() {
  auto s = s_;
  co_await flush();
  if (!s->is_socket)
    throw std::logic_error("eddy::stream::shutdown_write: not a socket (close a pipe end instead)");
  if (::shutdown(s->fdn(), SHUT_WR) != 0)
    throw std::system_error(errno, std::system_category(), "eddy::stream::shutdown_write");
}

task<void> stream::close() {
  auto s = s_;
  if (!s || !s->open()) co_return;
  std::exception_ptr e;
  try {
    co_await flush();
  } catch (const cancelled_error&) {
    throw;
  } catch (...) {
    e = std::current_exception();
  }
  if (s->is_socket)
    co_await s->sock.close();
  else
    co_await s->fd.close();
  if (e) std::rethrow_exception(e);
}

}  // namespace eddy
