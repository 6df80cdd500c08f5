// eddy::tls_context: the settings TLS streams share (certificates, trusted CAs,
// ALPN, versions, session resumption), built once and used by many connections, on
// any thread. A thin owner of an OpenSSL 3 SSL_CTX.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace eddy {

/// TLS protocol versions eddy offers. TLS 1.0 and 1.1 are not offered (RFC 8996).
enum class tls_version { tls1_2, tls1_3 };

/// A client context's settings. Checked by tls_context::client (tls_error with
/// tls_errc::configuration for files that do not load, std::invalid_argument for
/// bad values).
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// auto ctx = eddy::tls_context::client({.alpn = {"h2", "http/1.1"}});
/// ```
struct tls_client_options {
  /// PEM file of trusted CA certificates. With neither ca_file nor ca_path, the
  /// system's default store is used (Debian: /etc/ssl/certs).
  std::string ca_file{};
  /// Directory of hashed CA certificates (c_rehash).
  std::string ca_path{};
  /// Verify the server's chain and its name (tls_connect_options::server_name).
  /// On by default; turning it off accepts any certificate (tests only).
  bool verify = true;
  /// Client certificate chain and key (PEM), for servers that ask for one (mTLS).
  std::string cert_file{};
  std::string key_file{};
  /// ALPN protocols offered, most preferred first; each 1..255 bytes, at most 32.
  std::vector<std::string> alpn{};
  tls_version min_version = tls_version::tls1_2;
  tls_version max_version = tls_version::tls1_3;
  /// Keep the sessions (tickets) servers send, one per server name, and offer
  /// them on the next connection to the same name: an abbreviated handshake.
  bool resume_sessions = true;
  /// Server names whose sessions are kept at once, 1..1,000,000.
  std::size_t session_cache_size = 1024;
  /// Allow kTLS (the kernel's record layer) where tls_stream can use it
  /// (probe_ktls()); off: always encrypt in user space.
  bool ktls = true;
};

/// Whether a server asks for client certificates (mutual TLS).
enum class tls_client_auth {
  none,      ///< never asks
  optional,  ///< asks; a client without one is let in, one that fails to verify is not
  required,  ///< a client without a verified certificate fails the handshake
};

/// A server context's settings. cert_file and key_file are required.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// auto ctx = eddy::tls_context::server({.cert_file = "cert.pem", .key_file = "key.pem"});
/// ```
struct tls_server_options {
  /// Certificate chain (PEM, leaf first) and its private key (PEM).
  std::string cert_file{};
  std::string key_file{};
  /// Client certificates are asked for per client_auth and checked against this
  /// CA file (PEM); required unless client_auth is none.
  tls_client_auth client_auth = tls_client_auth::none;
  std::string client_ca_file{};
  /// ALPN protocols accepted, in the server's order of preference. A client
  /// offering none of them gets no protocol (the handshake goes on, as nginx does).
  std::vector<std::string> alpn{};
  tls_version min_version = tls_version::tls1_2;
  tls_version max_version = tls_version::tls1_3;
  /// Session tickets sent after each full TLS 1.3 handshake (0 turns resumption
  /// off), 0..16. TLS 1.2 clients get one ticket per handshake unless this is 0.
  /// One, not OpenSSL's two: each ticket costs both sides a session copy and its
  /// encryption (10-20 us of server CPU with OpenSSL 3.0), and a client resuming
  /// one connection at a time needs one (nginx 1.22 and HAProxy 2.6 keep OpenSSL's
  /// two for TLS 1.3). Raise it for clients that open several connections at once
  /// from one handshake.
  unsigned tickets = 1;
  /// Allow kTLS where tls_stream can use it (probe_ktls()).
  bool ktls = true;
};

namespace detail {
struct tls_context_state;  // io/tls/tls_context.cpp
}

/// Shared TLS settings: a client or a server context. Copies share one context.
///
/// A server context can serve several names (SNI): add_server_name() gives the
/// context whose certificate answers a client asking for that name; other names
/// get this context's certificate.
///
/// **Thread safety:** a copyable handle; a context may be used by streams on any
/// number of threads at once (OpenSSL's SSL_CTX is thread-safe, the session cache
/// has its own lock). Call add_server_name() before the context is used.
/// **Cancel safety:** n/a (not awaitable).
///
/// ```cpp
/// auto server = eddy::tls_context::server({.cert_file = "a.pem", .key_file = "a.key"});
/// server.add_server_name("b.example", eddy::tls_context::server({.cert_file = "b.pem",
///                                                                 .key_file = "b.key"}));
/// auto client = eddy::tls_context::client();   // system CAs, verification on
/// ```
class tls_context {
 public:
  /// A client context. Throws tls_error (configuration) naming a file that does not
  /// load, std::invalid_argument for a bad option.
  static tls_context client(const tls_client_options& opts = {});
  /// A server context. Throws as client(); also if the key does not match the
  /// certificate.
  static tls_context server(const tls_server_options& opts);

  /// Server contexts: connections whose SNI is `name` (case-insensitive; "*.suffix"
  /// matches one more label) use `ctx`'s certificate, key, client auth and ALPN.
  /// Throws std::invalid_argument for a client context, a bad name (1..253 bytes)
  /// or a client `ctx`.
  void add_server_name(const std::string& name, const tls_context& ctx);

  bool is_server() const noexcept;
  /// The OpenSSL context, for settings eddy does not expose (ciphers, curves).
  /// Change it only before the first stream uses the context.
  ssl_ctx_st* native_handle() const noexcept;
  /// Client contexts: server names whose session is kept now.
  std::size_t cached_sessions() const;

  /// For tls_stream (io/tls/): the state behind the handle.
  const std::shared_ptr<detail::tls_context_state>& state() const noexcept { return s_; }

 private:
  explicit tls_context(std::shared_ptr<detail::tls_context_state> s) : s_(std::move(s)) {}
  std::shared_ptr<detail::tls_context_state> s_;
};

}  // namespace eddy
