// What tls_transport.cpp (the session's steps) and tls_config.cpp (the user's
// ssl.SSLContext, errors, extra info) share.
#pragma once

#include <openssl/ssl.h>

#include <string>

#include <eddy/io/detail/tls_cipher_bio.hpp>
#include "tls_transport.hpp"

namespace eddypy::stream {

// The TLS configuration of a transport or of a whole server (_core.TLSConfig):
// made once per create_server(ssl=...), once per client connection.
struct tls_config_object {
  PyObject_HEAD
  SSL_CTX* ctx;          // the user's context's, up-referenced
  PyObject* context;     // the user's ssl.SSLContext
  PyObject* handshake_timeout_obj;  // as the user gave it, for asyncio's message
  double handshake_timeout;
  double shutdown_timeout;
  bool server_side;
  bool post_handshake_auth;  // client: offer it, as ssl.SSLObject does
};

struct tls_layer {
  SSL* ssl = nullptr;
  eddy::detail::cipher_io io;   // ciphertext in (receive buffers) and out (to the write queue)
  PyObject* config = nullptr;   // tls_config_object, strong
  PyObject* waiter = nullptr;   // resolved once the handshake ends (create_connection, start_tls)
  PyObject* hostname = nullptr; // server_hostname, or null
  std::string plain;            // decrypted, not yet taken by the protocol, from plain_pos on
  std::size_t plain_pos = 0;
  std::string held;             // written, not encrypted yet (until the turn's end or the handshake's)
  eddy::join_handle<void>* timer = nullptr;  // handshake, then shutdown timeout
  bool call_connection_made = true;
  bool encrypt_queued = false;  // a callback encrypts `held` at the end of this turn
  bool handshake_done = false;
  bool close_notify_sent = false;
  bool peer_closed = false;     // close_notify received
  bool end_seen = false;        // the protocol was told of the end (eof_received)
  bool failed = false;          // a fatal TLS error: nothing more is read or written

  tls_layer() = default;
  tls_layer(const tls_layer&) = delete;
  ~tls_layer() {
    if (ssl != nullptr) SSL_free(ssl);
  }
};

extern PyTypeObject tls_config_type;

// An ssl.SSLError (or SSLCertVerificationError) instance for the failed call
// that left `ssl_error` (SSL_get_error) and OpenSSL's error queue, which it
// drains: the class, reason and library asyncio's SSLObject would give.
PyObject* ssl_error_from_queue(SSL* ssl, int ssl_error);

}  // namespace eddypy::stream
