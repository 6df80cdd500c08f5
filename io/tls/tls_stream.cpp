// tls_stream: the handshake (client and server), the public read/write surface
// over the engine steps (tls_engine.cpp), ending, and what a stream says about its
// session.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <eddy/io/tls_stream.hpp>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/time.hpp>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <eddy/io/detail/openssl_errors.hpp>
#include "io/tls/tls_state.hpp"

namespace eddy {
namespace detail {
namespace {

void check_timeout(std::chrono::milliseconds d, const char* what) {
  if (d < std::chrono::milliseconds(1) || d > std::chrono::hours(1))
    throw std::invalid_argument(std::string("eddy::tls_stream: ") + what + " must be 1 ms..1 h, got " +
                                std::to_string(d.count()) + " ms");
}

std::optional<socket_address> peer_of(const stream_socket& s) {
  try {
    return s.peer_address();
  } catch (const std::exception&) {
    return std::nullopt;  // tls_state::peer() says "a TCP peer"
  }
}

tls_error handshake_error(tls_state& s, int ssl_error) {
  unsigned long first = 0;
  std::string reasons = drain_openssl_errors(&first);
  const std::string who = "eddy: TLS handshake with " + s.peer();
  const long result = SSL_get_verify_result(s.ssl);
  if (!s.notes.verify_failure.empty())
    return tls_error(tls_errc::certificate_verify_failed,
                     who + ": certificate verify failed: " + s.notes.verify_failure, first,
                     s.notes.verify_code);
  if (result != X509_V_OK && ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    return tls_error(tls_errc::certificate_verify_failed,
                     who + ": certificate verify failed: " + X509_verify_cert_error_string(result),
                     first, result);
  if (s.io.in_eof && (reasons.empty() || ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
    return tls_error(tls_errc::handshake_failed, who + " failed: the peer closed the connection", first);
  if (reasons.empty()) reasons = "SSL_get_error " + std::to_string(ssl_error);
  return tls_error(tls_errc::handshake_failed, who + " failed: " + reasons, first);
}

task<void> run_handshake(std::shared_ptr<tls_state> s) {
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(s->ssl);
    const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
    if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
      tls_error err = handshake_error(*s, e);
      // Send the alert OpenSSL wrote (unknown_ca, handshake_failure, ...) so the
      // peer learns why; it may be gone already.
      try {
        co_await flush(s);
      } catch (const std::exception&) {
      }
      throw err;
    }
    co_await flush(s);
    if (e == SSL_ERROR_NONE) break;
    if (s->io.in_eof) throw handshake_error(*s, SSL_ERROR_SYSCALL);
    // OpenSSL may stop after a post-handshake message (a ticket) with bytes
    // unread: call it again before receiving more.
    if (!s->io.in.empty()) continue;
    recv_buffer b = co_await s->sock.receive();
    if (b.empty())
      s->io.in_eof = true;
    else
      s->io.feed(std::move(b));
  }
  s->handshake_done = true;
}

const ktls_support& ktls_probed() {
  static const ktls_support k = probe_ktls();  // once per process: the kernel does not change
  return k;
}

void settle_ktls(tls_state& s) {
  if (!s.ctx->ktls) {
    s.ktls.why = "off in the context (ktls = false)";
  } else if (!s.is_tcp) {
    s.ktls.why = "kTLS needs a TCP socket";
  } else if (const ktls_support& k = ktls_probed(); !k.openssl || !k.ulp) {
    s.ktls.why = k.why;
  } else {
    s.ktls.why = "the kernel has kTLS, but eddy's TLS streams keep the record layer in user space "
                 "(the hand-off is not implemented)";
  }
}

std::shared_ptr<tls_state> new_state(stream_socket sock, const tls_context& ctx, bool server, bool tcp) {
  if (!ctx.state()) throw std::invalid_argument("eddy::tls_stream: an empty tls_context");
  if (ctx.is_server() != server)
    throw std::invalid_argument(server ? "eddy::tls_stream::accept needs a server context"
                                       : "eddy::tls_stream::connect needs a client context");
  if (!sock) throw std::invalid_argument("eddy::tls_stream: an empty transport");
  auto s = std::make_shared<tls_state>();
  s->peer_addr = peer_of(sock);
  s->sock = std::move(sock);
  s->ctx = ctx.state();
  s->server = server;
  s->is_tcp = tcp;
  ERR_clear_error();
  s->ssl = SSL_new(s->ctx->ctx);
  if (s->ssl == nullptr) throw_configuration("SSL_new");
  BIO* b = make_cipher_bio(&s->io);
  SSL_set_bio(s->ssl, b, b);  // one BIO both ways: one reference handed over
  SSL_set_ex_data(s->ssl, notes_index(), &s->notes);
  if (server)
    SSL_set_accept_state(s->ssl);
  else
    SSL_set_connect_state(s->ssl);
  return s;
}

bool is_ip_literal(const std::string& name) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, name.c_str(), buf) == 1 || ::inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

void set_client_name(tls_state& s, const std::string& name) {
  if (name.size() > 253 || name.find('\0') != std::string::npos)
    throw std::invalid_argument("eddy::tls_stream::connect: server_name must be 1..253 bytes without NUL");
  if (name.empty()) {
    if (s.ctx->verify)
      throw std::invalid_argument(
          "eddy::tls_stream::connect: server_name is needed to verify the server (or make the "
          "context with verify = false)");
    return;
  }
  const bool ip = is_ip_literal(name);
  if (!ip && SSL_set_tlsext_host_name(s.ssl, name.c_str()) != 1) throw_configuration("setting SNI " + name);
  if (s.ctx->verify) {
    X509_VERIFY_PARAM* p = SSL_get0_param(s.ssl);
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(p, name.c_str())
                      : X509_VERIFY_PARAM_set1_host(p, name.c_str(), name.size());
    if (ok != 1) throw_configuration("setting the name to verify " + name);
  }
  if (s.ctx->resume) {
    // One session per name and peer: the same name on another port is another server.
    s.notes.session_key = name + '@' + s.peer();
    if (SSL_SESSION* kept = s.ctx->take_session(s.notes.session_key)) {
      SSL_set_session(s.ssl, kept);
      SSL_SESSION_free(kept);
    }
  }
}

task<void> handshake_within(std::shared_ptr<tls_state> s, std::chrono::milliseconds d) {
  try {
    co_await with_timeout(d, run_handshake(s));
  } catch (const timeout_error&) {
    throw tls_error(tls_errc::handshake_timeout,
                    "eddy: TLS handshake with " + s->peer() + " timed out after " +
                        timeout_error::format_duration(d));
  }
  settle_ktls(*s);
}

}  // namespace

}  // namespace detail

tls_stream::tls_stream() noexcept = default;
tls_stream::tls_stream(std::shared_ptr<detail::tls_state> s) noexcept : s_(std::move(s)) {}
tls_stream::tls_stream(tls_stream&&) noexcept = default;
tls_stream& tls_stream::operator=(tls_stream&& o) noexcept {
  if (this != &o) {
    abort();
    s_ = std::move(o.s_);
  }
  return *this;
}
tls_stream::~tls_stream() { abort(); }

namespace detail {

task<tls_stream> start_client(stream_socket sock, bool tcp, tls_context ctx, std::string name,
                              tls_connect_options o) {
  check_timeout(o.handshake_timeout, "handshake_timeout");
  auto s = new_state(std::move(sock), ctx, false, tcp);
  set_client_name(*s, name);
  co_await handshake_within(s, o.handshake_timeout);
  co_return tls_stream_access::make(s);
}

task<tls_stream> start_server(stream_socket sock, bool tcp, tls_context ctx, tls_accept_options o) {
  check_timeout(o.handshake_timeout, "handshake_timeout");
  auto s = new_state(std::move(sock), ctx, true, tcp);
  co_await handshake_within(s, o.handshake_timeout);
  co_return tls_stream_access::make(s);
}

task<void> shutdown_both(std::shared_ptr<tls_state> s) {
  co_await send_close_notify(s);
  s->scratch.resize(tls_record_size);
  for (;;) {
    // Not in the loop's condition: GCC 12 miscompiles a co_await there.
    const std::size_t n = co_await read_record(s, s->scratch);
    if (n == 0) break;
  }
}

task<void> finish_shutdown(std::shared_ptr<tls_state> s, std::chrono::milliseconds timeout) {
  std::exception_ptr failure;
  bool timed_out = false;
  try {
    co_await with_timeout(timeout, shutdown_both(s));
  } catch (const timeout_error&) {
    timed_out = true;
  } catch (const std::exception&) {
    failure = std::current_exception();
  }
  try {
    co_await s->sock.close();
  } catch (const std::exception&) {
  }
  if (timed_out)
    throw tls_error(tls_errc::shutdown_timeout, "eddy: TLS shutdown with " + s->peer() +
                                                    ": no close_notify within " +
                                                    timeout_error::format_duration(timeout));
  if (failure) std::rethrow_exception(failure);
}

task<void> finish_close(std::shared_ptr<tls_state> s) {
  if (!s) co_return;
  try {
    co_await send_close_notify(s);
  } catch (const std::exception&) {
    // Best effort: the peer may be gone.
  }
  try {
    co_await s->sock.close();
  } catch (const std::exception&) {
  }
}

bool peer_gone(const std::error_code& e) {
  return e == std::errc::broken_pipe || e == std::errc::connection_reset || e == std::errc::not_connected;
}

task<void> half_close(std::shared_ptr<tls_state> s) {
  if (!s->peer_closed) {
    co_await send_close_notify(s);
    if (s->sock) s->sock.shutdown_write();
    co_return;
  }
  // The peer ended first: its close_notify was read, and a peer may close its
  // socket right after sending it (RFC 8446 6.1 does not make it wait for ours).
  // Then our close_notify and FIN have no one to go to, and the reset that says
  // so is the normal end of the connection, not an error. Checked without a
  // throw where it can be: a proxy ends every client connection this way, and an
  // exception through the relay's coroutines cost ~20 us a connection.
  try {
    co_await send_close_notify(s);
  } catch (const std::system_error& e) {
    if (!peer_gone(e.code())) throw;
    co_return;
  }
  if (!s->sock) co_return;
  if (::shutdown(s->sock.fd(), SHUT_WR) != 0 && errno != ENOTCONN)
    throw std::system_error(errno, std::system_category(), "eddy: shutdown(SHUT_WR)");
}

}  // namespace detail

task<tls_stream> tls_stream::connect(tcp_stream s, tls_context ctx, std::string server_name,
                                     tls_connect_options opts) {
  return detail::start_client(detail::stream_socket(std::move(s)), true, std::move(ctx),
                              std::move(server_name), opts);
}
task<tls_stream> tls_stream::connect(unix_stream s, tls_context ctx, std::string server_name,
                                     tls_connect_options opts) {
  return detail::start_client(detail::stream_socket(std::move(s)), false, std::move(ctx),
                              std::move(server_name), opts);
}
task<tls_stream> tls_stream::accept(tcp_stream s, tls_context ctx, tls_accept_options opts) {
  return detail::start_server(detail::stream_socket(std::move(s)), true, std::move(ctx), opts);
}
task<tls_stream> tls_stream::accept(unix_stream s, tls_context ctx, tls_accept_options opts) {
  return detail::start_server(detail::stream_socket(std::move(s)), false, std::move(ctx), opts);
}

task<void> tls_stream::shutdown_write() {
  if (!s_) throw std::logic_error("eddy::tls_stream::shutdown_write on an empty stream");
  return detail::half_close(s_);
}

task<void> tls_stream::shutdown(std::chrono::milliseconds timeout) {
  if (!s_) throw std::logic_error("eddy::tls_stream::shutdown on an empty stream");
  if (timeout < std::chrono::milliseconds(1) || timeout > std::chrono::hours(1))
    throw std::invalid_argument("eddy::tls_stream::shutdown: timeout must be 1 ms..1 h");
  return detail::finish_shutdown(s_, timeout);
}

task<void> tls_stream::close() {
  if (!s_) return detail::finish_close(nullptr);
  return detail::finish_close(s_);
}

void tls_stream::abort() noexcept {
  if (!s_) return;
  s_->broken = true;
  // Destroying the socket closes it and cancels what is in flight on it; those
  // operations hold the state, so it lives until they have unwound.
  detail::stream_socket dying(std::move(s_->sock));
}

std::string tls_stream::alpn_protocol() const {
  if (!s_) return {};
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(s_->ssl, &p, &len);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), len);
}

std::string tls_stream::server_name() const {
  if (!s_) return {};
  const char* n = SSL_get_servername(s_->ssl, TLSEXT_NAMETYPE_host_name);
  return n == nullptr ? std::string() : std::string(n);
}

std::string tls_stream::protocol_version() const { return s_ ? SSL_get_version(s_->ssl) : ""; }

std::string tls_stream::cipher() const {
  if (!s_) return {};
  const char* c = SSL_get_cipher_name(s_->ssl);
  return c == nullptr ? std::string() : std::string(c);
}

bool tls_stream::session_reused() const { return s_ && SSL_session_reused(s_->ssl) == 1; }

std::string tls_stream::peer_subject() const {
  if (!s_) return {};
  X509* cert = SSL_get0_peer_certificate(s_->ssl);
  if (cert == nullptr) return {};
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

const ktls_state& tls_stream::ktls() const {
  static const ktls_state none{false, false, "empty stream"};
  return s_ ? s_->ktls : none;
}

int tls_stream::fd() const noexcept { return s_ ? s_->sock.fd() : -1; }

const std::string& tls_stream::peer() const {
  static const std::string none;
  return s_ ? s_->peer() : none;
}

ssl_st* tls_stream::native_handle() const noexcept { return s_ ? s_->ssl : nullptr; }

}  // namespace eddy
