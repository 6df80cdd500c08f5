// eddy::tls_stream: TLS (1.2 and 1.3, OpenSSL 3) over an eddy byte stream — a
// tcp_stream, a unix_stream, one end of unix_stream::pair() — with the plain
// streams' read and write surface, so code written for tcp_stream works on it.
#pragma once

#include <chrono>
#include <cstddef>
#include <eddy/io/address.hpp>
#include <eddy/io/recv_buffer.hpp>
#include <eddy/io/stream.hpp>
#include <eddy/io/tcp.hpp>
#include <eddy/io/tls_context.hpp>
#include <eddy/io/tls_error.hpp>
#include <eddy/io/unix.hpp>
#include <eddy/runtime/task.hpp>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct ssl_st;  // OpenSSL's SSL

namespace eddy {

/// Options of tls_stream::connect. (The server name is connect's own parameter:
/// a braced temporary holding a std::string inside `co_await` trips a GCC 12
/// coroutine bug, so options structs stay trivially destructible.)
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// auto t = co_await eddy::tls_stream::connect(std::move(s), ctx, "example.com", {.handshake_timeout = 3s});
/// ```
struct tls_connect_options {
  /// The handshake must finish within this (tls_errc::handshake_timeout), 1 ms..1 h.
  std::chrono::milliseconds handshake_timeout{10'000};
};

/// Options of tls_stream::accept.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
struct tls_accept_options {
  /// The handshake must finish within this, 1 ms..1 h: a client that stalls
  /// (slowloris) is dropped with tls_errc::handshake_timeout.
  std::chrono::milliseconds handshake_timeout{10'000};
};

/// Whether the kernel does a stream's record layer (kTLS), and if not, why.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
struct ktls_state {
  bool send = false;     ///< the kernel encrypts what this stream writes
  bool receive = false;  ///< the kernel decrypts what it reads
  std::string why;       ///< when either is false: the reason, from the probe or the context
};

namespace detail {
struct tls_state;          // io/tls/tls_state.hpp
struct tls_stream_access;  // io/tls/: makes streams from their state
}

/// A TLS connection over an eddy byte stream.
///
/// Made by `connect` (client) or `accept` (server), each of which runs the
/// handshake. Then it reads and writes like tcp_stream: `read_some`, `receive`,
/// `read_exact`, `read_until`, `read_line`, `write_some`, `write_all`. OpenSSL runs
/// in memory (a BIO over eddy's own buffers), so the transport's fast paths stay:
/// on io_uring, ciphertext arrives in the provided-buffer ring and is decrypted from
/// there.
///
/// Ending: `shutdown_write()` sends close_notify (and then the transport's FIN);
/// `shutdown()` also waits for the peer's close_notify; `close()` sends close_notify
/// if it was not sent and closes without waiting. A read returns 0 (end of stream)
/// only after the peer's close_notify: a transport that ends without one throws
/// tls_error(tls_errc::truncated), since the data may have been cut short.
///
/// **Thread safety:** a move-only value; use it on the loop thread it was made on.
/// One task may read while another writes (they share the TLS session, never at the
/// same instant). Two concurrent reads, or two concurrent writes, are not allowed.
/// **Cancel safety:** `read_some`, `receive`, `read_until`, `read_line` and
/// `read_exact` are cancel-safe: a read cancelled while waiting for the rest of a
/// record consumed nothing the caller did not get (partial records stay inside the
/// session, delimited reads keep their bytes buffered), and the stream stays usable.
/// `write_some` and `write_all` are not: a cancelled write may have sent part of a
/// record, so the stream is marked broken (later writes throw tls_errc::closed) and
/// should be closed. `connect`/`accept` cancelled close the transport.
/// Destroying a stream with operations in flight cancels them.
///
/// ```cpp
/// auto ctx = eddy::tls_context::client();
/// auto tcp = co_await eddy::tcp_connect("example.com", 443);   // sched/tcp_connect.hpp
/// auto t = co_await eddy::tls_stream::connect(std::move(tcp), ctx, "example.com");
/// co_await t.write_all("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n");
/// std::string status = co_await t.read_line();
/// co_await t.shutdown();   // close_notify both ways, then close
/// ```
class tls_stream {
 public:
  tls_stream() noexcept;
  tls_stream(tls_stream&&) noexcept;
  tls_stream& operator=(tls_stream&&) noexcept;
  ~tls_stream();

  /// Client handshake over `s` with a client context. `server_name` is sent as SNI
  /// and the certificate is verified against it; an IP address is verified against
  /// the certificate's IP entries and not sent as SNI. It is required (1..253 bytes)
  /// when the context verifies, and may be empty otherwise. Throws tls_error
  /// (handshake_failed, certificate_verify_failed, handshake_timeout),
  /// std::invalid_argument for a server context or bad options; the transport is
  /// closed on any failure.
  static task<tls_stream> connect(tcp_stream s, tls_context ctx, std::string server_name,
                                  tls_connect_options opts = {});
  static task<tls_stream> connect(unix_stream s, tls_context ctx, std::string server_name,
                                  tls_connect_options opts = {});
  /// Server handshake over `s` with a server context. Throws as connect.
  static task<tls_stream> accept(tcp_stream s, tls_context ctx, tls_accept_options opts = {});
  static task<tls_stream> accept(unix_stream s, tls_context ctx, tls_accept_options opts = {});

  // ---- reading ----

  /// Up to `buf.size()` decrypted bytes (at most one record's worth, 16 KiB);
  /// 0 after the peer's close_notify. Throws tls_error (truncated, protocol_error),
  /// std::system_error for transport errors (ECONNRESET).
  task<std::size_t> read_some(std::span<std::byte> buf);
  /// The next decrypted bytes in a buffer of their own (up to a record); empty after
  /// the peer's close_notify. Errors as read_some.
  task<recv_buffer> receive();
  /// Fills `buf`. Throws incomplete_read_error (stream.hpp) if the stream ends first.
  task<void> read_exact(std::span<std::byte> buf);
  /// Reads exactly `n` bytes, n ≤ 16 MiB (else stream_limit_error).
  task<std::vector<std::byte>> read_exact(std::size_t n);
  /// read_exact(n) as text.
  task<std::string> read_exact_string(std::size_t n);
  /// Up to and including `delim` (non-empty); stream_limit_error when `limit` bytes
  /// (1..16 MiB) hold none, incomplete_read_error at end of stream before it.
  task<std::string> read_until(std::string delim, std::size_t limit = 64 * 1024);
  /// A line with its '\n'; at end of stream what is left ("" if nothing).
  /// stream_limit_error for a line longer than `limit`.
  task<std::string> read_line(std::size_t limit = 64 * 1024);

  // ---- writing ----

  /// Encrypts and sends up to 64 KiB of `buf` (whole records); returns the count.
  task<std::size_t> write_some(std::span<const std::byte> buf);
  /// Encrypts and sends all of `buf`, 64 KiB at a time. Throws tls_error(closed)
  /// after shutdown_write() or a broken write, std::system_error (EPIPE, ...).
  task<void> write_all(std::span<const std::byte> buf);
  task<void> write_all(std::string_view text) {
    return write_all(std::as_bytes(std::span(text.data(), text.size())));
  }
  /// Sends every buffer, in order, as records of up to 16 KiB each.
  task<void> write_all(std::span<const std::span<const std::byte>> bufs);

  // ---- ending ----

  /// Sends close_notify (once), then shuts the transport's write side. Reading
  /// goes on until the peer's close_notify.
  task<void> shutdown_write();
  /// Sends close_notify, reads (and discards) until the peer's close_notify, then
  /// closes the transport. Throws tls_error(shutdown_timeout) after `timeout`
  /// (1 ms..1 h), tls_error(truncated) if the transport ends first; closed either way.
  task<void> shutdown(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Sends close_notify if it was not sent (best effort, not waited on), then closes.
  task<void> close();
  /// Closes the transport now, without close_notify (the peer sees truncation).
  void abort() noexcept;

  // ---- about the session ----

  /// The ALPN protocol agreed on ("" if none).
  std::string alpn_protocol() const;
  /// The SNI name the client sent ("" if none).
  std::string server_name() const;
  /// "TLSv1.3" or "TLSv1.2".
  std::string protocol_version() const;
  /// The cipher suite's OpenSSL name ("TLS_AES_256_GCM_SHA384").
  std::string cipher() const;
  /// True if the handshake resumed an earlier session (a ticket).
  bool session_reused() const;
  /// The peer certificate's subject as one line ("CN = example.com"), "" if none.
  std::string peer_subject() const;
  /// Whether the kernel does the record layer for this stream, and why not.
  const ktls_state& ktls() const;
  /// The transport's fd (-1 when empty). Still owned here.
  int fd() const noexcept;
  /// The peer's address, as the transport gave it when the stream was made.
  const std::string& peer() const;
  /// OpenSSL's SSL object, for what eddy does not expose. Reading or writing
  /// through it directly corrupts the stream.
  ssl_st* native_handle() const noexcept;
  explicit operator bool() const noexcept { return static_cast<bool>(s_); }

 private:
  friend struct detail::tls_stream_access;
  explicit tls_stream(std::shared_ptr<detail::tls_state> s) noexcept;
  std::shared_ptr<detail::tls_state> s_;
};

/// What this kernel and OpenSSL offer for kTLS (TCP_ULP "tls"), probed now: a
/// loopback connection is made and the ULP attached, then TLS_TX and TLS_RX are
/// tried with a zero key for AES-GCM-128.
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
///
/// ```cpp
/// const eddy::ktls_support k = eddy::probe_ktls();
/// if (!k.ulp) std::printf("no kTLS: %s\n", k.why.c_str());
/// ```
struct ktls_support {
  bool openssl = false;  ///< OpenSSL was built with kTLS (no OPENSSL_NO_KTLS)
  bool ulp = false;      ///< setsockopt(TCP_ULP, "tls") works
  bool send = false;     ///< TLS_TX with AES-GCM-128
  bool receive = false;  ///< TLS_RX with AES-GCM-128
  std::string why;       ///< what is missing, with the errno
};
ktls_support probe_ktls();

}  // namespace eddy
