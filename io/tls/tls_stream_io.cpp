// tls_stream's reads and writes, over the engine steps of tls_state.hpp. Each
// public member hands its state (a shared_ptr) to a coroutine here, so an operation
// in flight never depends on where the tls_stream object itself lives.
#include <algorithm>
#include <cstring>
#include <eddy/io/stream.hpp>
#include <eddy/io/tls_stream.hpp>
#include <stdexcept>

#include "io/tls/tls_state.hpp"

namespace eddy {
namespace detail {
namespace {

constexpr std::size_t max_read_exact = 16 * 1024 * 1024;
constexpr std::size_t max_limit = 16 * 1024 * 1024;

std::size_t take_buffered(tls_state& s, std::span<std::byte> buf) {
  const std::size_t n = std::min(buf.size(), s.buffered());
  std::memcpy(buf.data(), s.plain.data() + s.plain_pos, n);
  s.plain_pos += n;
  return n;
}

std::string take_string(tls_state& s, std::size_t n) {
  std::string out(reinterpret_cast<const char*>(s.plain.data() + s.plain_pos), n);
  s.plain_pos += n;
  return out;
}

// Blocks of one record for receive(), kept per thread: a recv_buffer can outlive
// the stream it came from.
struct block_pool {
  std::vector<std::byte*> free;
  ~block_pool() {
    for (std::byte* b : free) delete[] b;
  }
};
thread_local block_pool blocks;

void give_block(void*, std::byte* b, unsigned) noexcept {
  if (blocks.free.size() < 64) {
    try {
      blocks.free.push_back(b);
      return;
    } catch (...) {
    }
  }
  delete[] b;
}

struct block_owner {
  std::byte* b;
  ~block_owner() {
    if (b != nullptr) give_block(nullptr, b, 0);
  }
};

task<std::size_t> read_some_on(std::shared_ptr<tls_state> s, std::span<std::byte> buf) {
  if (s->buffered() > 0) co_return take_buffered(*s, buf);
  co_return co_await read_record(s, buf);
}

task<recv_buffer> receive_on(std::shared_ptr<tls_state> s) {
  block_owner owner{nullptr};
  if (!blocks.free.empty()) {
    owner.b = blocks.free.back();
    blocks.free.pop_back();
  } else {
    owner.b = new std::byte[tls_record_size];
  }
  std::size_t n = 0;
  if (s->buffered() > 0)
    n = take_buffered(*s, std::span<std::byte>(owner.b, tls_record_size));
  else
    n = co_await read_record(s, std::span<std::byte>(owner.b, tls_record_size));
  if (n == 0) co_return recv_buffer();
  co_return recv_buffer(std::exchange(owner.b, nullptr), n, &give_block, nullptr, 0);
}

// Buffers until `n` bytes are there; false at the end of the stream.
task<bool> buffer_at_least(std::shared_ptr<tls_state> s, std::size_t n) {
  while (s->buffered() < n) {
    const std::size_t got = co_await read_more(s);
    if (got == 0) co_return false;
  }
  co_return true;
}

task<void> read_exact_on(std::shared_ptr<tls_state> s, std::span<std::byte> buf) {
  // Buffered first and copied only when complete: a cancelled read_exact loses nothing.
  if (!co_await buffer_at_least(s, buf.size())) {
    std::string partial = take_string(*s, s->buffered());
    throw incomplete_read_error("eddy::tls_stream::read_exact: the stream ended after " +
                                    std::to_string(partial.size()) + " of " +
                                    std::to_string(buf.size()) + " bytes",
                                std::move(partial));
  }
  take_buffered(*s, buf);
}

task<std::vector<std::byte>> read_exact_n(std::shared_ptr<tls_state> s, std::size_t n) {
  if (n > max_read_exact)
    throw stream_limit_error("eddy::tls_stream::read_exact: " + std::to_string(n) +
                             " bytes is over the 16 MiB limit");
  std::vector<std::byte> out(n);
  co_await read_exact_on(s, out);
  co_return out;
}

task<std::string> read_exact_text(std::shared_ptr<tls_state> s, std::size_t n) {
  std::string out(n, '\0');
  co_await read_exact_on(s, std::as_writable_bytes(std::span(out.data(), out.size())));
  co_return out;
}

task<std::string> read_until_on(std::shared_ptr<tls_state> s, std::string delim, std::size_t limit,
                                bool end_ok) {
  if (delim.empty()) throw std::invalid_argument("eddy::tls_stream::read_until: empty delimiter");
  if (limit < 1 || limit > max_limit)
    throw std::invalid_argument("eddy::tls_stream::read_until: limit must be 1..16 MiB");
  std::size_t searched = 0;  // bytes already known to hold no delimiter start
  for (;;) {
    const char* base = reinterpret_cast<const char*>(s->plain.data() + s->plain_pos);
    const std::string_view have(base, s->buffered());
    const std::size_t at = have.find(delim, searched);
    if (at != std::string_view::npos) {
      if (at + delim.size() > limit) break;
      co_return take_string(*s, at + delim.size());
    }
    if (have.size() >= limit) break;
    searched = have.size() >= delim.size() ? have.size() - delim.size() + 1 : 0;
    const std::size_t got = co_await read_more(s);
    if (got == 0) {
      if (end_ok) co_return take_string(*s, s->buffered());
      std::string partial = take_string(*s, s->buffered());
      throw incomplete_read_error("eddy::tls_stream::read_until: the stream ended before the delimiter",
                                  std::move(partial));
    }
  }
  throw stream_limit_error("eddy::tls_stream: no delimiter within the limit of " +
                           std::to_string(limit) + " bytes");
}

task<void> write_all_on(std::shared_ptr<tls_state> s, std::span<const std::byte> data) {
  check_writable(*s);
  while (!data.empty()) {
    const std::size_t n = std::min(data.size(), tls_write_chunk);
    encrypt(*s, data.first(n));
    data = data.subspan(n);
    co_await flush(s);
  }
}

task<std::size_t> write_some_on(std::shared_ptr<tls_state> s, std::span<const std::byte> data) {
  check_writable(*s);
  const std::size_t n = std::min(data.size(), tls_write_chunk);
  encrypt(*s, data.first(n));
  co_await flush(s);
  co_return n;
}

task<void> write_vectored_on(std::shared_ptr<tls_state> s,
                             std::vector<std::span<const std::byte>> bufs) {
  check_writable(*s);
  // Small buffers are gathered into whole records (one SSL_write per buffer would
  // make one record each, 22+ bytes of overhead apiece); large ones go as they are.
  std::vector<std::byte> stage;
  for (std::span<const std::byte> b : bufs) {
    if (stage.size() + b.size() <= tls_record_size) {
      stage.insert(stage.end(), b.begin(), b.end());
      continue;
    }
    encrypt(*s, stage);
    stage.clear();
    if (b.size() < tls_record_size) {
      stage.assign(b.begin(), b.end());
    } else {
      encrypt(*s, b);
    }
    if (s->io.out.size() >= tls_write_chunk) co_await flush(s);
  }
  encrypt(*s, stage);
  co_await flush(s);
}

void need(const std::shared_ptr<tls_state>& s, const char* what) {
  if (!s) throw std::logic_error(std::string("eddy::tls_stream::") + what + " on an empty stream");
}

}  // namespace
}  // namespace detail

task<std::size_t> tls_stream::read_some(std::span<std::byte> buf) {
  detail::need(s_, "read_some");
  return detail::read_some_on(s_, buf);
}

task<recv_buffer> tls_stream::receive() {
  detail::need(s_, "receive");
  return detail::receive_on(s_);
}

task<void> tls_stream::read_exact(std::span<std::byte> buf) {
  detail::need(s_, "read_exact");
  if (buf.size() > detail::max_read_exact)
    throw stream_limit_error("eddy::tls_stream::read_exact: over the 16 MiB limit");
  return detail::read_exact_on(s_, buf);
}

task<std::vector<std::byte>> tls_stream::read_exact(std::size_t n) {
  detail::need(s_, "read_exact");
  return detail::read_exact_n(s_, n);
}

task<std::string> tls_stream::read_exact_string(std::size_t n) {
  detail::need(s_, "read_exact_string");
  if (n > detail::max_read_exact)
    throw stream_limit_error("eddy::tls_stream::read_exact_string: over the 16 MiB limit");
  return detail::read_exact_text(s_, n);
}

task<std::string> tls_stream::read_until(std::string delim, std::size_t limit) {
  detail::need(s_, "read_until");
  return detail::read_until_on(s_, std::move(delim), limit, false);
}

task<std::string> tls_stream::read_line(std::size_t limit) {
  detail::need(s_, "read_line");
  return detail::read_until_on(s_, "\n", limit, true);
}

task<std::size_t> tls_stream::write_some(std::span<const std::byte> buf) {
  detail::need(s_, "write_some");
  return detail::write_some_on(s_, buf);
}

task<void> tls_stream::write_all(std::span<const std::byte> buf) {
  detail::need(s_, "write_all");
  return detail::write_all_on(s_, buf);
}

task<void> tls_stream::write_all(std::span<const std::span<const std::byte>> bufs) {
  detail::need(s_, "write_all");
  if (bufs.size() > 1024) throw std::invalid_argument("eddy::tls_stream::write_all: more than 1024 buffers");
  return detail::write_vectored_on(s_, {bufs.begin(), bufs.end()});
}

}  // namespace eddy
