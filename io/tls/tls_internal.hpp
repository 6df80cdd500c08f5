// What the context and the stream share inside io/tls/: the per-connection notes
// OpenSSL's callbacks fill in (reached through SSL ex_data), and the context's state.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <eddy/io/tls_context.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace eddy::detail {

// Per connection, written by the callbacks during the handshake.
struct ssl_notes {
  std::string session_key;     // client: the cache slot of this server name
  std::string verify_failure;  // the first certificate that failed, and why
  long verify_code = 0;        // its X509_V_ERR_*
};

// The SSL ex_data slot holding a connection's ssl_notes*.
int notes_index();
inline ssl_notes* notes_of(const SSL* ssl) {
  return static_cast<ssl_notes*>(SSL_get_ex_data(ssl, notes_index()));
}

struct tls_context_state {
  SSL_CTX* ctx = nullptr;
  bool server = false;
  bool verify = true;
  bool ktls = true;
  bool resume = true;
  std::size_t cache_capacity = 0;
  std::vector<unsigned char> alpn_wire;  // the server's list, length-prefixed
  std::vector<std::pair<std::string, std::shared_ptr<tls_context_state>>> names;  // SNI

  // Client session cache, one session per server name; any thread.
  std::mutex mutex;
  std::unordered_map<std::string, SSL_SESSION*> sessions;

  tls_context_state() = default;
  tls_context_state(const tls_context_state&) = delete;
  ~tls_context_state();

  // The kept session for `key` (a reference the caller frees), or null. A TLS 1.3
  // session is handed out once (RFC 8446 C.4: a ticket is not reused), a TLS 1.2
  // one stays for the next connection too.
  SSL_SESSION* take_session(const std::string& key);
  void keep_session(const std::string& key, SSL_SESSION* s);
};

}  // namespace eddy::detail
