// tls_context: the SSL_CTX behind a client or server context, and the callbacks
// that make it eddy's: verification notes (which certificate failed and why), SNI
// (the server switches context by name), ALPN (the server's preference wins), and
// the client's session cache (one session per server name, filled by
// OpenSSL's new-session callback when tickets arrive).
//
// Every context refuses renegotiation (SSL_OP_NO_RENEGOTIATION): a peer asking for
// it gets a no_renegotiation alert and the connection goes on (TLS 1.2), as nginx
// and HAProxy do; TLS 1.3 has no renegotiation.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <eddy/io/tls_context.hpp>
#include <eddy/io/tls_error.hpp>
#include <stdexcept>

#include <eddy/io/detail/openssl_errors.hpp>
#include "io/tls/tls_internal.hpp"

namespace eddy {
namespace detail {

int notes_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

namespace {

int context_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

tls_context_state* context_of(SSL_CTX* c) {
  return static_cast<tls_context_state*>(SSL_CTX_get_ex_data(c, context_index()));
}

// Records the first failure of the chain (the deepest certificate OpenSSL
// complains about first) so the error can name it; OpenSSL's own message only
// says "certificate verify failed".
int verify_callback(int ok, X509_STORE_CTX* store) {
  if (ok != 0) return ok;
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  ssl_notes* notes = ssl != nullptr ? notes_of(ssl) : nullptr;
  if (notes == nullptr || !notes->verify_failure.empty()) return ok;
  const int err = X509_STORE_CTX_get_error(store);
  std::string subject = "(no certificate)";
  if (X509* cert = X509_STORE_CTX_get_current_cert(store)) {
    char buf[512];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
    subject = buf;
  }
  notes->verify_code = err;
  notes->verify_failure = "certificate '" + subject + "' (depth " +
                          std::to_string(X509_STORE_CTX_get_error_depth(store)) +
                          "): " + X509_verify_cert_error_string(err);
  return ok;
}

int new_session_callback(SSL* ssl, SSL_SESSION* session) {
  tls_context_state* c = context_of(SSL_get_SSL_CTX(ssl));
  ssl_notes* notes = notes_of(ssl);
  if (c == nullptr || notes == nullptr || notes->session_key.empty()) return 0;
  c->keep_session(notes->session_key, session);
  return 1;  // we keep the reference
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

bool name_matches(const std::string& pattern, const std::string& name) {
  if (pattern == name) return true;
  // "*.example.com" matches exactly one more label: "a.example.com", not "a.b.example.com".
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    const std::string suffix = pattern.substr(1);
    const auto dot = name.find('.');
    return dot != std::string::npos && dot > 0 && name.substr(dot) == suffix;
  }
  return false;
}

int servername_callback(SSL* ssl, int*, void* arg) {
  auto* primary = static_cast<tls_context_state*>(arg);
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (sni == nullptr) return SSL_TLSEXT_ERR_OK;
  const std::string name = lower(sni);
  // Exact names first, then wildcards, whatever order they were added in.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [pattern, ctx] : primary->names) {
      const bool wildcard = pattern.rfind("*.", 0) == 0;
      if (wildcard != (pass == 1) || !name_matches(pattern, name)) continue;
      if (SSL_set_SSL_CTX(ssl, ctx->ctx) == nullptr) return SSL_TLSEXT_ERR_ALERT_FATAL;
      // SSL_set_SSL_CTX takes the certificate; verification of client
      // certificates follows the chosen context too.
      SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx->ctx), SSL_CTX_get_verify_callback(ctx->ctx));
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK;  // an unknown name gets the default certificate
}

int alpn_select_callback(SSL*, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned int inlen, void* arg) {
  auto* c = static_cast<tls_context_state*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, c->alpn_wire.data(),
                            static_cast<unsigned>(c->alpn_wire.size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int version_number(tls_version v) { return v == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; }

void check_path(const std::string& p, const char* what) {
  if (p.size() > 4096)
    throw std::invalid_argument(std::string("eddy::tls_context: ") + what + " is longer than 4096 bytes");
  if (p.find('\0') != std::string::npos)
    throw std::invalid_argument(std::string("eddy::tls_context: ") + what + " contains a NUL byte");
}

std::vector<unsigned char> alpn_wire(const std::vector<std::string>& protos) {
  if (protos.size() > 32)
    throw std::invalid_argument("eddy::tls_context: at most 32 ALPN protocols, got " +
                                std::to_string(protos.size()));
  std::vector<unsigned char> w;
  for (const std::string& p : protos) {
    if (p.empty() || p.size() > 255)
      throw std::invalid_argument("eddy::tls_context: an ALPN protocol name must be 1..255 bytes, '" +
                                  p + "' is " + std::to_string(p.size()));
    w.push_back(static_cast<unsigned char>(p.size()));
    w.insert(w.end(), p.begin(), p.end());
  }
  return w;
}

std::shared_ptr<tls_context_state> new_state(bool server, tls_version min, tls_version max) {
  if (version_number(min) > version_number(max))
    throw std::invalid_argument("eddy::tls_context: min_version is above max_version");
  auto s = std::make_shared<tls_context_state>();
  s->server = server;
  ERR_clear_error();
  s->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (s->ctx == nullptr) throw_configuration("SSL_CTX_new");
  SSL_CTX_set_ex_data(s->ctx, context_index(), s.get());
  if (SSL_CTX_set_min_proto_version(s->ctx, version_number(min)) != 1 ||
      SSL_CTX_set_max_proto_version(s->ctx, version_number(max)) != 1)
    throw_configuration("setting the protocol versions");
  SSL_CTX_set_options(s->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Read whole bursts from the BIO in one call: fewer calls into it per record.
  SSL_CTX_set_read_ahead(s->ctx, 1);
  return s;
}

void load_chain(SSL_CTX* ctx, const std::string& cert, const std::string& key) {
  check_path(cert, "cert_file");
  check_path(key, "key_file");
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
    throw_configuration("loading the certificate chain " + cert);
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
      throw_configuration("the private key " + key + " does not match the certificate " + cert);
    throw_configuration("loading the private key " + key);
  }
  if (SSL_CTX_check_private_key(ctx) != 1)
    throw_configuration("the private key " + key + " does not match the certificate " + cert);
}

}  // namespace

tls_context_state::~tls_context_state() {
  for (auto& [key, s] : sessions) SSL_SESSION_free(s);
  if (ctx != nullptr) SSL_CTX_free(ctx);
}

SSL_SESSION* tls_context_state::take_session(const std::string& key) {
  std::lock_guard<std::mutex> g(mutex);
  auto it = sessions.find(key);
  if (it == sessions.end()) return nullptr;
  SSL_SESSION* s = it->second;
  if (SSL_SESSION_get_protocol_version(s) >= TLS1_3_VERSION) {
    sessions.erase(it);
    return s;
  }
  SSL_SESSION_up_ref(s);
  return s;
}

void tls_context_state::keep_session(const std::string& key, SSL_SESSION* s) {
  std::lock_guard<std::mutex> g(mutex);
  auto it = sessions.find(key);
  if (it != sessions.end()) {
    SSL_SESSION_free(it->second);
    it->second = s;
    return;
  }
  if (sessions.size() >= cache_capacity) {
    // Full: drop any one (the map's first) rather than keep an LRU list for what
    // is only a speed-up.
    SSL_SESSION_free(sessions.begin()->second);
    sessions.erase(sessions.begin());
  }
  sessions.emplace(key, s);
}

}  // namespace detail

tls_context tls_context::client(const tls_client_options& o) {
  if (o.session_cache_size < 1 || o.session_cache_size > 1'000'000)
    throw std::invalid_argument("eddy::tls_context: session_cache_size must be 1..1000000, got " +
                                std::to_string(o.session_cache_size));
  const std::vector<unsigned char> alpn = detail::alpn_wire(o.alpn);
  auto s = detail::new_state(false, o.min_version, o.max_version);
  s->verify = o.verify;
  s->ktls = o.ktls;
  s->resume = o.resume_sessions;
  s->cache_capacity = o.session_cache_size;
  SSL_CTX* c = s->ctx;
  if (o.verify) {
    detail::check_path(o.ca_file, "ca_file");
    detail::check_path(o.ca_path, "ca_path");
    if (!o.ca_file.empty() || !o.ca_path.empty()) {
      if (SSL_CTX_load_verify_locations(c, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
                                        o.ca_path.empty() ? nullptr : o.ca_path.c_str()) != 1)
        detail::throw_configuration("loading the CA certificates " + o.ca_file + o.ca_path);
    } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
      detail::throw_configuration("loading the system's CA store");
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, detail::verify_callback);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  if (!o.cert_file.empty() || !o.key_file.empty()) {
    if (o.cert_file.empty() || o.key_file.empty())
      throw std::invalid_argument("eddy::tls_context: a client certificate needs both cert_file and key_file");
    detail::load_chain(c, o.cert_file, o.key_file);
  }
  if (!alpn.empty() && SSL_CTX_set_alpn_protos(c, alpn.data(), static_cast<unsigned>(alpn.size())) != 0)
    detail::throw_configuration("setting ALPN");
  if (o.resume_sessions) {
    // The cache is ours (per server name): OpenSSL's internal client cache is
    // keyed by session id, which a client cannot look up by name.
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, detail::new_session_callback);
  } else {
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  }
  return tls_context(std::move(s));
}

tls_context tls_context::server(const tls_server_options& o) {
  if (o.cert_file.empty() || o.key_file.empty())
    throw std::invalid_argument("eddy::tls_context: a server needs cert_file and key_file");
  if (o.tickets > 16)
    throw std::invalid_argument("eddy::tls_context: tickets must be 0..16, got " + std::to_string(o.tickets));
  if (o.client_auth != tls_client_auth::none && o.client_ca_file.empty())
    throw std::invalid_argument("eddy::tls_context: client_auth needs client_ca_file");
  auto s = detail::new_state(true, o.min_version, o.max_version);
  s->ktls = o.ktls;
  s->alpn_wire = detail::alpn_wire(o.alpn);
  SSL_CTX* c = s->ctx;
  detail::load_chain(c, o.cert_file, o.key_file);
  // Needed for resumption whenever client certificates may be verified, and
  // harmless otherwise (OpenSSL refuses to resume without one under SSL_VERIFY_PEER).
  static const unsigned char sid_ctx[] = "eddy";
  SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);
  if (o.client_auth != tls_client_auth::none) {
    detail::check_path(o.client_ca_file, "client_ca_file");
    if (SSL_CTX_load_verify_locations(c, o.client_ca_file.c_str(), nullptr) != 1)
      detail::throw_configuration("loading the client CA certificates " + o.client_ca_file);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca_file.c_str());
    if (names == nullptr) detail::throw_configuration("reading the client CA names " + o.client_ca_file);
    SSL_CTX_set_client_CA_list(c, names);
    int mode = SSL_VERIFY_PEER;
    if (o.client_auth == tls_client_auth::required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c, mode, detail::verify_callback);
  }
  if (o.tickets == 0) {
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(c, 0);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  } else {
    SSL_CTX_set_num_tickets(c, o.tickets);
  }
  if (!s->alpn_wire.empty()) SSL_CTX_set_alpn_select_cb(c, detail::alpn_select_callback, s.get());
  SSL_CTX_set_tlsext_servername_callback(c, detail::servername_callback);
  SSL_CTX_set_tlsext_servername_arg(c, s.get());
  return tls_context(std::move(s));
}

void tls_context::add_server_name(const std::string& name, const tls_context& ctx) {
  if (!s_ || !s_->server) throw std::invalid_argument("eddy::tls_context::add_server_name: not a server context");
  if (!ctx.s_ || !ctx.s_->server)
    throw std::invalid_argument("eddy::tls_context::add_server_name: '" + name + "' needs a server context");
  if (name.empty() || name.size() > 253)
    throw std::invalid_argument("eddy::tls_context::add_server_name: a name must be 1..253 bytes");
  if (ctx.s_ == s_) throw std::invalid_argument("eddy::tls_context::add_server_name: a context cannot name itself");
  s_->names.emplace_back(detail::lower(name), ctx.s_);
}

bool tls_context::is_server() const noexcept { return s_ && s_->server; }

ssl_ctx_st* tls_context::native_handle() const noexcept { return s_ ? s_->ctx : nullptr; }

std::size_t tls_context::cached_sessions() const {
  if (!s_) return 0;
  std::lock_guard<std::mutex> g(s_->mutex);
  return s_->sessions.size();
}

}  // namespace eddy
