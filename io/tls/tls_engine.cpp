// The engine steps of tls_state.hpp: flushing ciphertext, reading records,
// encrypting, close_notify. See the protocol at the top of tls_state.hpp.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <eddy/io/tls_error.hpp>

#include <eddy/io/detail/openssl_errors.hpp>
#include "io/tls/tls_state.hpp"

namespace eddy::detail {
namespace {

tls_error read_error(tls_state& s, int ssl_error) {
  unsigned long first = 0;
  std::string reasons = drain_openssl_errors(&first);
  s.broken = true;
  const bool eof = ERR_GET_LIB(first) == ERR_LIB_SSL &&
                   ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
  if (eof || (ssl_error == SSL_ERROR_SYSCALL && s.io.in_eof))
    return tls_error(tls_errc::truncated,
                     "eddy: TLS stream from " + s.peer() +
                         " truncated: the transport ended without close_notify",
                     first);
  if (reasons.empty()) reasons = "SSL_get_error " + std::to_string(ssl_error);
  return tls_error(tls_errc::protocol_error, "eddy: TLS stream from " + s.peer() + ": " + reasons, first);
}

}  // namespace

task<void> flush(std::shared_ptr<tls_state> s) {
  if (s->io.out.empty()) co_return;
  auto guard = co_await s->send_lock.scoped_lock();
  while (!s->io.out.empty()) {
    s->sending.swap(s->io.out);
    try {
      co_await s->sock.write_all(std::span<const std::byte>(s->sending));
    } catch (...) {
      // Part of a record may be on the wire: nothing more can follow it.
      s->broken = true;
      s->sending.clear();
      throw;
    }
    s->sending.clear();
  }
}

task<std::size_t> read_record(std::shared_ptr<tls_state> s, std::span<std::byte> buf) {
  if (buf.empty()) co_return 0;
  for (;;) {
    std::size_t n = 0;
    ERR_clear_error();
    const int r = SSL_read_ex(s->ssl, buf.data(), buf.size(), &n);
    if (r == 1) {
      // A read can make OpenSSL write: a KeyUpdate answer, an alert.
      if (!s->io.out.empty()) co_await flush(s);
      co_return n;
    }
    const int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) {
      s->peer_closed = true;
      co_return 0;
    }
    if (e != SSL_ERROR_WANT_READ) throw read_error(*s, e);
    if (!s->io.out.empty()) co_await flush(s);
    if (s->io.in_eof) throw read_error(*s, SSL_ERROR_SYSCALL);  // never spin at the end
    // OpenSSL may stop after a post-handshake message (a ticket) with bytes
    // unread: call it again before receiving more.
    if (!s->io.in.empty()) continue;
    recv_buffer b = co_await s->sock.receive();
    if (b.empty())
      s->io.in_eof = true;
    else
      s->io.feed(std::move(b));
  }
}

task<std::size_t> read_more(std::shared_ptr<tls_state> s) {
  s->scratch.resize(tls_record_size);
  // Into scratch, then appended: a read cancelled while waiting leaves `plain` as it was.
  const std::size_t n = co_await read_record(s, s->scratch);
  if (s->plain_pos > 0 && s->plain_pos == s->plain.size()) {
    s->plain.clear();
    s->plain_pos = 0;
  } else if (s->plain_pos > 64 * 1024 && s->plain_pos * 2 > s->plain.size()) {
    s->plain.erase(s->plain.begin(), s->plain.begin() + static_cast<std::ptrdiff_t>(s->plain_pos));
    s->plain_pos = 0;
  }
  s->plain.insert(s->plain.end(), s->scratch.begin(), s->scratch.begin() + static_cast<std::ptrdiff_t>(n));
  co_return n;
}

void check_writable(const tls_state& s) {
  if (s.close_notify_sent)
    throw tls_error(tls_errc::closed, "eddy: TLS stream to " + s.peer() + ": write after shutdown_write");
  if (s.broken || !s.handshake_done || !s.sock)
    throw tls_error(tls_errc::closed,
                    "eddy: TLS stream to " + s.peer() + " is closed or broken by an earlier error");
}

void encrypt(tls_state& s, std::span<const std::byte> data) {
  if (data.empty()) return;
  std::size_t done = 0;
  ERR_clear_error();
  if (SSL_write_ex(s.ssl, data.data(), data.size(), &done) == 1 && done == data.size()) return;
  unsigned long first = 0;
  const std::string reasons = drain_openssl_errors(&first);
  s.broken = true;
  throw tls_error(tls_errc::protocol_error,
                  "eddy: TLS write to " + s.peer() + ": " + (reasons.empty() ? "failed" : reasons), first);
}

task<void> send_close_notify(std::shared_ptr<tls_state> s) {
  if (s->close_notify_sent || !s->handshake_done || s->broken || !s->sock) co_return;
  s->close_notify_sent = true;
  ERR_clear_error();
  SSL_shutdown(s->ssl);  // 0: ours is written, the peer's not seen yet; either is fine
  ERR_clear_error();
  co_await flush(s);
}

}  // namespace eddy::detail
