// The state behind a tls_stream, and the engine's steps the stream's files share.
//
// Protocol of the engine (every step runs on the loop thread, and no OpenSSL call
// ever waits: the BIO only reads what eddy already received and only appends
// what OpenSSL writes):
//  1. call OpenSSL (handshake, read, write, shutdown) after clearing the thread's
//     error queue, so an error is always this call's;
//  2. whatever OpenSSL wrote (records, alerts, tickets, a key update) is sent by
//     flush() under send_lock, in order, before the step returns;
//  3. on SSL_ERROR_WANT_READ the step awaits the transport's receive() and hands
//     the buffer to the BIO; end of transport is remembered (io.in_eof) and OpenSSL
//     then reports it: a clean end only after close_notify;
//  4. a cancelled await leaves OpenSSL between two calls, so the session is never
//     torn; only a cancelled send (part of a record on the wire) breaks the stream.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <eddy/io/address.hpp>
#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/io/tls_stream.hpp>
#include <eddy/runtime/mutex.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <eddy/io/detail/tls_cipher_bio.hpp>
#include "io/tls/tls_internal.hpp"

namespace eddy::detail {

// One TLS record's worth of plaintext: the most SSL_read returns at once.
inline constexpr std::size_t tls_record_size = 16 * 1024;
// Plaintext encrypted per write step: four records, then they are sent, so a
// large write is pipelined and its ciphertext never all held at once.
inline constexpr std::size_t tls_write_chunk = 64 * 1024;

struct tls_state {
  stream_socket sock;
  SSL* ssl = nullptr;
  cipher_io io;
  ssl_notes notes;
  std::shared_ptr<tls_context_state> ctx;
  bool server = false;
  bool is_tcp = false;
  // Who the peer is, for error messages and the client's session cache key: the
  // address is read when the stream is made, the text only when something needs
  // it (formatting it for every handshake was 1 % of a TLS proxy's CPU).
  std::optional<socket_address> peer_addr;
  mutable std::string peer_text;
  const std::string& peer() const {
    if (peer_text.empty()) {
      try {
        if (peer_addr) peer_text = peer_addr->to_string();
      } catch (const std::exception&) {
      }
      if (peer_text.empty()) peer_text = is_tcp ? "a TCP peer" : "a Unix socket peer";
    }
    return peer_text;
  }

  // Plaintext read ahead by the delimited reads, from plain_pos on.
  std::vector<std::byte> plain;
  std::size_t plain_pos = 0;
  std::vector<std::byte> scratch;  // one record, for reads that buffer

  eddy::mutex send_lock;
  std::vector<std::byte> sending;  // ciphertext being sent (swapped with io.out)

  bool handshake_done = false;
  bool close_notify_sent = false;
  bool peer_closed = false;
  bool broken = false;
  ktls_state ktls;

  tls_state() = default;
  tls_state(const tls_state&) = delete;
  ~tls_state() {
    if (ssl != nullptr) SSL_free(ssl);
  }

  std::size_t buffered() const noexcept { return plain.size() - plain_pos; }
};

struct tls_stream_access {
  static tls_stream make(std::shared_ptr<tls_state> s) noexcept { return tls_stream(std::move(s)); }
  static const std::shared_ptr<tls_state>& state(const tls_stream& t) noexcept { return t.s_; }
};

// Step 2: sends io.out (and what is appended while it is sent).
task<void> flush(std::shared_ptr<tls_state> s);
// One SSL_read into `buf` (≤ one record): bytes, or 0 after close_notify.
task<std::size_t> read_record(std::shared_ptr<tls_state> s, std::span<std::byte> buf);
// Appends one read_record's bytes to s->plain; returns the count (0: the end).
task<std::size_t> read_more(std::shared_ptr<tls_state> s);
// Encrypts `data` into io.out (all of it: the BIO never refuses a write).
void encrypt(tls_state& s, std::span<const std::byte> data);
// Throws tls_error(closed) unless the stream can be written.
void check_writable(const tls_state& s);
// Sends close_notify once (after a completed handshake, on an unbroken stream).
task<void> send_close_notify(std::shared_ptr<tls_state> s);

task<tls_stream> start_client(stream_socket sock, bool tcp, tls_context ctx, std::string name,
                              tls_connect_options o);
task<tls_stream> start_server(stream_socket sock, bool tcp, tls_context ctx, tls_accept_options o);

}  // namespace eddy::detail
