// The TLS session of an eddyloop stream transport (see tls_transport.hpp).
//
// Protocol of one TLS transport (asyncio's SSLProtocol states, in C++):
//  1. tls_attach makes the SSL from the user's SSL_CTX over a cipher BIO, sets
//     SNI and the name to verify (client), arms the handshake timer and, as a
//     client, queues the ClientHello. The protocol is silent meanwhile: no
//     connection_made, no connection_lost (app_silent).
//  2. The reader (tls_read_loop) feeds every receive buffer to the BIO and runs
//     tls_pump: the handshake until it ends; then connection_made (unless this
//     is start_tls) and the waiter's result, as SSLProtocol._on_handshake_complete
//     does. A failed handshake, a timeout (ConnectionAbortedError) or an EOF
//     (ConnectionResetError) ends the transport with that exception, which the
//     waiter gets; the exception handler is not called (asyncio logs OSErrors
//     in debug mode only).
//  3. Decrypted bytes collect in `plain` (up to read_batch per pump) and go to
//     data_received, or to a BufferedProtocol's buffers, while reading is not
//     paused; a paused transport neither decrypts nor receives more, so the
//     peer is held back by TCP as on a plain transport.
//  4. write() holds the plaintext until the end of the loop turn (or until
//     write_step is held), then encrypts it in one go and hands the records to
//     the plain write queue (transport_write.cpp): flow control and the writers
//     are the plain transport's, counting the held plaintext and the ciphertext.
//  5. The peer's close_notify: eof_received() (its answer ignored, as asyncio
//     ignores it under TLS), then our close_notify and close. An EOF without
//     close_notify after the handshake: eof_received() and close, as asyncio
//     does (it does not report the truncation either).
//  6. close(): the plaintext not yet taken is dropped, close_notify queued; the
//     socket stays open until the peer's close_notify, its EOF, or
//     ssl_shutdown_timeout (then connection_lost(TimeoutError())).
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <algorithm>
#include <cstring>

#include <eddy/runtime/time.hpp>

#include "tls_layer.hpp"

namespace eddypy::stream {
namespace {

// Plaintext decrypted per pump before it goes to the protocol: asyncio's
// SSLProtocol reads up to 256 KiB (max_size) per data_received.
constexpr std::size_t read_batch = 256 * 1024;
// Plaintext encrypted per step of a large write, so its ciphertext joins the
// write queue in pieces rather than all at once.
constexpr std::size_t write_step = 256 * 1024;

tls_config_object* config_of(const tls_layer& s) { return reinterpret_cast<tls_config_object*>(s.config); }

// Hands what OpenSSL wrote (records, alerts, tickets) to the write queue.
void flush_out(transport_object* t) {
  tls_layer& s = *t->tls;
  if (s.io.out.empty()) return;
  if (t->shut_down || t->fd < 0) {
    s.io.out.clear();
    return;
  }
  // queue_out copies (or sends) at once and calls nothing that encrypts.
  PyObject* r = queue_out(t, reinterpret_cast<const char*>(s.io.out.data()),
                          static_cast<Py_ssize_t>(s.io.out.size()), nullptr);
  s.io.out.clear();
  if (r == nullptr) PyErr_Clear();  // the loop is closed: the bytes go with it
  Py_XDECREF(r);
}

void resolve_waiter(tls_layer& s, PyObject* exc) {
  PyObject* w = s.waiter;
  s.waiter = nullptr;
  if (w == nullptr) return;
  PyObject* c = PyObject_CallMethod(w, "cancelled", nullptr);
  const int cancelled = c != nullptr ? PyObject_IsTrue(c) : -1;
  Py_XDECREF(c);
  PyObject* r = nullptr;
  if (cancelled == 0)
    r = exc != nullptr ? PyObject_CallMethod(w, "set_exception", "O", exc)
                       : PyObject_CallMethod(w, "set_result", "O", Py_None);
  if (r == nullptr && PyErr_Occurred()) PyErr_WriteUnraisable(w);
  Py_XDECREF(r);
  Py_DECREF(w);
}

void stop_timer(tls_layer& s) {
  if (s.timer == nullptr) return;
  s.timer->cancel();
  delete s.timer;  // detaches; the task ends on its own and drops its reference
  s.timer = nullptr;
}

// Ends the transport with `exc` (a new reference, consumed), as asyncio's
// SSLProtocol._fatal_error + _force_close: OSErrors (SSLError included) are not
// reported; anything else goes to the exception handler.
void fail(transport_object* t, PyObject* exc, const char* message) {
  t->tls->failed = true;
  if (exc == nullptr) {  // making the exception failed: end with that error
    fatal_error(t, message);
    return;
  }
  if (!PyObject_IsInstance(exc, PyExc_OSError)) {
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
    Py_DECREF(exc);
    fatal_error(t, message);
    return;
  }
  shutdown(t, exc);
  Py_DECREF(exc);
}

eddy::task<void> tls_timer(transport_object* t, double seconds, bool handshake) {
  // t: a strong reference taken by arm_timer, released at the end.
  try {
    co_await eddy::sleep_for(std::chrono::duration<double>(seconds));
    tls_layer* s = t->tls;
    if (s != nullptr && !t->shut_down && !t->core->closed) {
      delete s->timer;  // this task's own handle: it runs on detached
      s->timer = nullptr;
      if (handshake && !s->handshake_done) {
        // asyncio's words and class (SSLProtocol._check_handshake_timeout).
        PyObject* exc = PyObject_CallFunction(
            PyExc_ConnectionAbortedError, "N",
            PyUnicode_FromFormat("SSL handshake is taking longer than %R seconds: aborting the connection",
                                 config_of(*s)->handshake_timeout_obj));
        fail(t, exc, "SSL handshake timeout");
      } else if (!handshake && t->close_wait) {
        fail(t, PyObject_CallNoArgs(PyExc_TimeoutError), "SSL shutdown timeout");
      }
    }
  } catch (const eddy::cancelled_error&) {
    // Cancelled by the loop's close (not by stop_timer): the handle must go
    // now, while its loop still exists, not at the transport's dealloc.
    if (t->core->closed && t->tls != nullptr && t->tls->timer != nullptr) {
      delete t->tls->timer;
      t->tls->timer = nullptr;
    }
  }
  Py_DECREF(as_obj(t));
}

void arm_timer(transport_object* t, double seconds, bool handshake) {
  tls_layer& s = *t->tls;
  stop_timer(s);
  if (t->core->closed) return;
  Py_INCREF(as_obj(t));
  try {
    s.timer = new eddy::join_handle<void>(t->core->loop->spawn(tls_timer(t, seconds, handshake)));
  } catch (...) {
    Py_DECREF(as_obj(t));
  }
}

// Step 4: encrypts the plaintext write() held, in steps of write_step.
void encrypt_held(transport_object* t) {
  tls_layer& s = *t->tls;
  std::size_t off = 0;
  while (off < s.held.size() && !t->shut_down && !s.failed) {
    const std::size_t step = std::min(write_step, s.held.size() - off);
    std::size_t done = 0;
    ERR_clear_error();
    if (SSL_write_ex(s.ssl, s.held.data() + off, step, &done) != 1) {
      const int e = SSL_get_error(s.ssl, 0);
      s.held.clear();
      t->tls_held = 0;
      fail(t, ssl_error_from_queue(s.ssl, e), "Fatal error on SSL protocol");
      return;
    }
    off += done;
    t->tls_held = s.held.size() - off;
    flush_out(t);
  }
  s.held.clear();
  t->tls_held = 0;
}

PyObject* connection_reset() { return PyObject_CallNoArgs(PyExc_ConnectionResetError); }

void handshake_done(transport_object* t) {
  tls_layer& s = *t->tls;
  s.handshake_done = true;
  t->app_silent = false;
  stop_timer(s);
  if (s.call_connection_made && t->protocol != nullptr) {
    const ref protocol(t->protocol);
    PyObject* r = PyObject_CallMethod(protocol.get(), "connection_made", "O", as_obj(t));
    if (r == nullptr) {
      fatal_error(t, "Exception in callback connection_made");
      resolve_waiter(s, nullptr);
      return;
    }
    Py_DECREF(r);
  }
  resolve_waiter(s, nullptr);
  if (!s.held.empty() && !t->shut_down) encrypt_held(t);  // written before the handshake ended
}

// Step 2. True once the handshake is done (now or before).
bool handshake_step(transport_object* t) {
  tls_layer& s = *t->tls;
  if (s.handshake_done) return true;
  for (;;) {
    if (s.io.in.empty() && s.io.in_eof) {
      // asyncio: eof_received during the handshake is ConnectionResetError.
      fail(t, connection_reset(), "SSL handshake failed");
      return false;
    }
    ERR_clear_error();
    const int r = SSL_do_handshake(s.ssl);
    if (r == 1) {
      flush_out(t);
      handshake_done(t);
      return !t->shut_down;
    }
    const int e = SSL_get_error(s.ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
      flush_out(t);
      if (!s.io.in.empty()) continue;  // stopped after a message with more bytes here
      return false;
    }
    // asyncio sends no alert on a failed handshake (SSLProtocol drops what the
    // SSLObject wrote and aborts); the peer sees the connection close.
    s.io.out.clear();
    fail(t, ssl_error_from_queue(s.ssl, e), "SSL handshake failed");
    return false;
  }
}

void call_eof_received(transport_object* t) {
  if (t->protocol == nullptr || t->app_silent) return;
  const ref protocol(t->protocol);
  PyObject* r = PyObject_CallMethod(protocol.get(), "eof_received", nullptr);
  if (r == nullptr) {
    fatal_error(t, "Error calling eof_received()");
    return;
  }
  Py_DECREF(r);  // keep-open answers have no effect under TLS (asyncio logs a warning)
}

// Step 5: the peer's close_notify or EOF, after everything before it was taken.
void peer_ended(transport_object* t) {
  tls_layer& s = *t->tls;
  if (s.end_seen) return;
  s.end_seen = true;
  // asyncio tells the protocol of the end in every case, after its own close()
  // too (SSLProtocol._do_shutdown calls eof_received once unwrap succeeds).
  call_eof_received(t);
  if (t->shut_down) return;
  if (t->close_wait) {  // our close() waited for this
    t->close_wait = false;
    stop_timer(s);
    if (may_end(t)) shutdown(t, nullptr);
    return;
  }
  if (t->shut_down) return;
  if (!t->closing) {
    t->closing = true;
    if (s.peer_closed) tls_close(t);  // answer close_notify with ours
  }
  t->close_wait = false;
  stop_timer(s);
  if (may_end(t)) shutdown(t, nullptr);
}

enum class pumped { more, wait_bytes, ended };

// Decrypts into `plain` up to read_batch. Data read is kept even when the call
// that follows fails: it is delivered before the error ends the transport.
pumped decrypt(transport_object* t) {
  tls_layer& s = *t->tls;
  if (s.plain_pos == s.plain.size()) {
    s.plain.clear();
    s.plain_pos = 0;
  }
  const std::size_t start = s.plain.size();
  for (;;) {
    if (s.plain.size() - start >= read_batch) return pumped::more;
    if (s.io.in.empty() && SSL_pending(s.ssl) == 0) {
      flush_out(t);
      if (s.io.in_eof) return s.plain.size() > start ? pumped::more : pumped::ended;
      return s.plain.size() > start ? pumped::more : pumped::wait_bytes;
    }
    // One record at most, read into the stack: growing `plain` first would
    // clear 16 KiB per call (two calls per small request) for nothing.
    char record[16 * 1024];
    std::size_t n = 0;
    ERR_clear_error();
    const int r = SSL_read_ex(s.ssl, record, sizeof record, &n);
    if (r == 1) {
      s.plain.append(record, n);
      continue;
    }
    const int e = SSL_get_error(s.ssl, r);
    if (e == SSL_ERROR_WANT_READ) continue;  // the loop's top sees whether bytes are left
    flush_out(t);
    if (e == SSL_ERROR_ZERO_RETURN) {
      s.peer_closed = true;
      return pumped::more;
    }
    if (s.plain.size() > start) {
      ERR_clear_error();  // deliver first; the failing call repeats next time
      return pumped::more;
    }
    fail(t, ssl_error_from_queue(s.ssl, e), "Fatal error on SSL protocol");
    return pumped::ended;
  }
}

// Steps 2, 3 and 5 as far as the bytes at hand go. True when the reader should
// receive more; false when it should wait (paused, ended).
bool tls_pump(transport_object* t) {
  tls_layer& s = *t->tls;
  if (!handshake_step(t)) return !t->shut_down && !s.failed;
  while (!t->shut_down && !s.failed) {
    if (s.plain_pos < s.plain.size()) {
      if (t->closing) {  // close() drops what the protocol has not taken (asyncio's SHUTDOWN state)
        s.plain.clear();
        s.plain_pos = 0;
      } else {
        if (t->reading_paused || t->protocol == nullptr) return false;
        Py_ssize_t off = static_cast<Py_ssize_t>(s.plain_pos);
        const bool ok = deliver_span(t, s.plain.data(), static_cast<Py_ssize_t>(s.plain.size()), off);
        s.plain_pos = static_cast<std::size_t>(off);
        if (!ok || s.plain_pos < s.plain.size()) return false;
        continue;
      }
    }
    if (s.peer_closed || (s.io.in_eof && s.io.in.empty() && SSL_pending(s.ssl) == 0)) {
      peer_ended(t);
      return false;
    }
    if (t->reading_paused && !t->close_wait) return false;
    switch (decrypt(t)) {
      case pumped::more:
        break;
      case pumped::wait_bytes:
        return true;
      case pumped::ended:
        if (!t->shut_down && !s.failed) peer_ended(t);
        return false;
    }
  }
  return false;
}

}  // namespace

eddy::task<void> tls_read_loop(transport_object* t, eddy::recv_buffer first, bool eof) {
  // Runs inside read_loop, which holds the reference to t and the fd's epilogue.
  tls_layer& s = *t->tls;
  if (!first.empty()) s.io.feed(std::move(first));
  if (eof) s.io.in_eof = true;
  for (;;) {
    if (t->shut_down || t->core->closed) co_return;
    const bool want_bytes = tls_pump(t);
    if (t->shut_down || t->core->closed) co_return;
    if (!want_bytes || s.io.in_eof) {
      t->resume->clear();
      co_await t->resume->wait();  // resume_reading, close, or the end
      continue;
    }
    eddy::recv_buffer b = co_await t->stream->receive();
    if (t->shut_down || t->core->closed) co_return;
    if (b.empty()) {
      // As on a plain transport: what the last data_received queued runs first.
      co_await eddy::yield_now();
      s.io.in_eof = true;
    } else {
      s.io.feed(std::move(b));
    }
  }
}

PyObject* tls_write(transport_object* t, const char* p, Py_ssize_t n, Py_buffer* view) {
  tls_layer& s = *t->tls;
  if (!s.failed) {
    s.held.append(p, static_cast<std::size_t>(n));
    t->tls_held = s.held.size();
  }
  if (view != nullptr) PyBuffer_Release(view);
  if (s.failed || !s.handshake_done) Py_RETURN_NONE;  // the handshake's end encrypts what waits
  // What one turn writes becomes one run of records at its end (aiohttp writes
  // a response as headers, then body: one record instead of two), as the plain
  // transport sends a turn's writes at once; past the high-water mark, at once.
  if (static_cast<Py_ssize_t>(s.held.size()) > t->high || s.held.size() >= write_step || t->core->send_now) {
    encrypt_held(t);
  } else if (!s.encrypt_queued) {
    try {
      t->core->loop->call_soon([r = ref(as_obj(t))] {
        transport_object* t = as_tr(r.get());
        if (t->tls == nullptr) return;
        t->tls->encrypt_queued = false;
        if (!t->shut_down && !t->core->closed) encrypt_held(t);
      });
      s.encrypt_queued = true;
    } catch (...) {
      PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
      return nullptr;
    }
  }
  maybe_pause_protocol(t);
  Py_RETURN_NONE;
}

void tls_close(transport_object* t) {
  tls_layer& s = *t->tls;
  s.plain.clear();
  s.plain_pos = 0;
  // During the handshake asyncio aborts (SSLProtocol._start_shutdown): nothing to notify.
  if (!s.handshake_done || s.failed) {
    s.held.clear();
    t->tls_held = 0;
    return;
  }
  // Held open while the records and close_notify are queued: a write queue that
  // drains meanwhile must not end the transport before close_notify is in it.
  t->close_wait = true;
  encrypt_held(t);  // what was written goes before close_notify
  if (!s.close_notify_sent && !t->shut_down) {
    s.close_notify_sent = true;
    ERR_clear_error();
    SSL_shutdown(s.ssl);
    ERR_clear_error();
    flush_out(t);
  }
  t->close_wait = !s.end_seen && !s.peer_closed && !s.io.in_eof && !t->shut_down;
  if (t->close_wait) arm_timer(t, config_of(s)->shutdown_timeout, false);
}

void tls_on_shutdown(transport_object* t, PyObject* exc) {
  tls_layer& s = *t->tls;
  s.held.clear();  // aborted: dropped with the write queue
  t->tls_held = 0;
  stop_timer(s);
  if (s.waiter == nullptr || t->core->closed) return;  // a closed loop's futures take no result
  resolve_waiter(s, exc);  // asyncio: _wakeup_waiter(exc) from connection_lost
}

bool tls_attach(transport_object* t, PyObject* config, PyObject* server_hostname, PyObject* waiter,
                bool call_connection_made) {
  if (!PyObject_TypeCheck(config, &tls_config_type)) {
    PyErr_SetString(PyExc_TypeError, "eddyloop: a _core.TLSConfig is needed");
    return false;
  }
  auto* cfg = reinterpret_cast<tls_config_object*>(config);
  std::string host;
  if (server_hostname != nullptr && server_hostname != Py_None) {
    if (!PyUnicode_Check(server_hostname)) {
      PyErr_SetString(PyExc_TypeError, "server_hostname must be a str");
      return false;
    }
    const char* h = PyUnicode_AsUTF8(server_hostname);
    if (h == nullptr) return false;
    host = h;
    if (host.empty() || host.size() > 253 || host.find('\0') != std::string::npos) {
      PyErr_Format(PyExc_ValueError, "server_hostname %R is not a valid host name", server_hostname);
      return false;
    }
  }
  auto* s = new tls_layer();
  s->ssl = SSL_new(cfg->ctx);
  if (s->ssl == nullptr) {
    delete s;
    PyErr_SetString(PyExc_MemoryError, "SSL_new failed");
    return false;
  }
  BIO* bio = eddy::detail::make_cipher_bio(&s->io);
  SSL_set_bio(s->ssl, bio, bio);  // one BIO both ways: one reference handed over
  // As ssl.SSLObject sets them (Modules/_ssl.c newPySSLSocket).
  SSL_set_mode(s->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_AUTO_RETRY);
  if (cfg->server_side) {
    SSL_set_accept_state(s->ssl);
  } else {
    SSL_set_connect_state(s->ssl);
    if (cfg->post_handshake_auth) SSL_set_post_handshake_auth(s->ssl, 1);
    if (!host.empty()) {
      ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
      // SNI for names only (RFC 6066 §3); the name or address to verify as
      // ssl.SSLContext.check_hostname asks, with the context's host flags.
      const bool sni_ok = ip != nullptr || SSL_set_tlsext_host_name(s->ssl, host.c_str()) == 1;
      bool ok = sni_ok;
      PyObject* check = PyObject_GetAttrString(cfg->context, "check_hostname");
      const int checking = check != nullptr ? PyObject_IsTrue(check) : -1;
      Py_XDECREF(check);
      if (checking < 0) ok = false;
      if (ok && checking == 1) {
        X509_VERIFY_PARAM* param = SSL_get0_param(s->ssl);
        ok = ip != nullptr ? X509_VERIFY_PARAM_set1_ip(param, ASN1_STRING_get0_data(ip), ASN1_STRING_length(ip)) == 1
                           : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) == 1;
      }
      if (ip != nullptr) ASN1_OCTET_STRING_free(ip);
      if (!ok) {
        delete s;
        if (!PyErr_Occurred())
          PyErr_Format(PyExc_ValueError, "server_hostname %R cannot be used for TLS", server_hostname);
        return false;
      }
    }
  }
  s->config = Py_NewRef(config);
  s->waiter = waiter != nullptr && waiter != Py_None ? Py_NewRef(waiter) : nullptr;
  s->hostname = host.empty() ? nullptr : Py_NewRef(server_hostname);
  s->call_connection_made = call_connection_made;
  if (PyDict_SetItemString(t->extra, "sslcontext", cfg->context) < 0) {
    Py_DECREF(s->config);
    Py_XDECREF(s->waiter);
    Py_XDECREF(s->hostname);
    delete s;
    return false;
  }
  t->tls = s;
  t->app_silent = true;
  arm_timer(t, cfg->handshake_timeout, true);
  if (!cfg->server_side) {
    handshake_step(t);  // the ClientHello goes out now
    if (PyErr_Occurred()) PyErr_Clear();
  }
  return true;
}

void tls_release_input(transport_object* t) {
  tls_layer& s = *t->tls;
  s.io.in = {};
  s.io.in_chunk.reset();
  s.io.spill.clear();
}

int tls_traverse(transport_object* t, visitproc visit, void* arg) {
  Py_VISIT(t->tls->waiter);
  Py_VISIT(t->tls->config);
  return 0;
}

void tls_clear(transport_object* t) { Py_CLEAR(t->tls->waiter); }

void tls_free(transport_object* t) {
  tls_layer* s = t->tls;
  if (s == nullptr) return;
  t->tls = nullptr;
  stop_timer(*s);
  Py_XDECREF(s->config);
  Py_XDECREF(s->waiter);
  Py_XDECREF(s->hostname);
  delete s;
}

}  // namespace eddypy::stream
