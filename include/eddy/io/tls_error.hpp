// eddy::tls_error: what a TLS stream or context reports when something fails, with
// its own error category (tls_category()) so callers can tell a certificate that did
// not verify from a truncated stream or a protocol error.
#pragma once

#include <string>
#include <system_error>

namespace eddy {

/// What went wrong in TLS. The values are the `error_code` values of tls_category().
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// catch (const eddy::tls_error& e) {
///   if (e.code() == eddy::tls_errc::certificate_verify_failed) log("bad peer: %s", e.what());
/// }
/// ```
enum class tls_errc {
  /// The handshake failed: a protocol error, an alert from the peer, no shared
  /// version or cipher, or the peer closed during it. what() has OpenSSL's reason.
  handshake_failed = 1,
  /// The peer's certificate chain or name did not verify; what() names the
  /// certificate (subject, depth) and why; tls_error::verify_result() has the X509_V_ code.
  certificate_verify_failed,
  /// The handshake did not finish within the handshake timeout.
  handshake_timeout,
  /// The transport ended without the peer's close_notify: the data may have been cut
  /// short by an attacker or a crash, so it is not reported as a clean end.
  truncated,
  /// A protocol error after the handshake (a bad record, a failed MAC, an alert).
  protocol_error,
  /// shutdown() did not see the peer's close_notify within its timeout.
  shutdown_timeout,
  /// Writing after shutdown_write(), or using a stream after a fatal error.
  closed,
  /// A certificate, key or CA file could not be loaded, or an option was refused.
  configuration,
};

/// The category of tls_errc ("eddy.tls").
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
const std::error_category& tls_category() noexcept;

/// So `e.code() == eddy::tls_errc::truncated` compares as expected.
inline std::error_code make_error_code(tls_errc e) noexcept {
  return {static_cast<int>(e), tls_category()};
}

/// A TLS failure. `code()` is a tls_errc in tls_category(); what() says what failed
/// in words: for verification, which certificate and why; for protocol errors,
/// OpenSSL's reason string; and with which peer.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { auto t = co_await eddy::tls_stream::connect(std::move(s), ctx, host); }
/// catch (const eddy::tls_error& e) { std::fprintf(stderr, "%s\n", e.what()); }
/// ```
class tls_error : public std::system_error {
 public:
  tls_error(tls_errc code, const std::string& what, unsigned long openssl_error = 0,
            long verify_result = 0)
      : std::system_error(make_error_code(code), what),
        openssl_error_(openssl_error),
        verify_result_(verify_result) {}
  /// The first OpenSSL error code of the failure (ERR_get_error()), 0 if none.
  unsigned long openssl_error() const noexcept { return openssl_error_; }
  /// For certificate_verify_failed: the X509_V_ERR_* code; 0 (X509_V_OK) otherwise.
  long verify_result() const noexcept { return verify_result_; }

 private:
  unsigned long openssl_error_;
  long verify_result_;
};

}  // namespace eddy

template <>
struct std::is_error_code_enum<eddy::tls_errc> : std::true_type {};
