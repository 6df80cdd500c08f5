// TLS under eddyloop's stream transport: the session lives in C++ (OpenSSL
// through eddy's cipher BIO, <eddy/io/detail/tls_cipher_bio.hpp>) instead of asyncio.sslproto's
// SSLProtocol and ssl.MemoryBIO in Python. The transport object is the same
// (transport_object.hpp); `t->tls` makes its socket bytes ciphertext. The
// SSL_CTX is the user's ssl.SSLContext's own, so every setting made there
// applies; eddyloop/loop.py decides which contexts may take this path and leaves
// the rest to sslproto (docs/python.md, "TLS").
#pragma once

#include "transport_object.hpp"

#include <eddy/io/recv_buffer.hpp>

namespace eddypy::stream {

#ifdef EDDYLOOP_TLS

// The reader's loop once the transport carries TLS: `first` is ciphertext the
// plain reader already holds, `eof` that the socket has ended.
eddy::task<void> tls_read_loop(transport_object* t, eddy::recv_buffer first, bool eof);
// write() on a TLS transport: encrypts and queues the records.
PyObject* tls_write(transport_object* t, const char* p, Py_ssize_t n, Py_buffer* view);
// close(): close_notify after the queued bytes; the socket then stays open for
// the peer's close_notify (ssl_shutdown_timeout) as asyncio's SSLProtocol waits.
void tls_close(transport_object* t);
// shutdown() ran: timers stop; a handshake still running fails its waiter.
void tls_on_shutdown(transport_object* t, PyObject* exc);
// Starts the session of a new transport, or of a plain one (start_tls). The
// caller holds the GIL; on failure a Python error is set and false returned.
bool tls_attach(transport_object* t, PyObject* config, PyObject* server_hostname, PyObject* waiter,
                bool call_connection_made);
// get_extra_info for the TLS names ('peercert', 'cipher', 'compression',
// 'ssl_object'): a new reference, or null with no error for other names.
PyObject* tls_extra(transport_object* t, PyObject* name);
// Frees the session (dealloc).
void tls_free(transport_object* t);
// The garbage collector's view of the session's references (the waiter may
// lead back to the transport through the task awaiting it).
int tls_traverse(transport_object* t, visitproc visit, void* arg);
// tp_clear's part: drops the waiter (the one reference that can close a cycle).
void tls_clear(transport_object* t);
// Drops the ciphertext not yet read, giving its receive buffer back (the
// reader's end: the buffer belongs to the loop, which may be gone by dealloc).
void tls_release_input(transport_object* t);
// What the ssl_object of eddyloop/tls.py asks: _tls_query(what).
PyObject* tr_tls_query(PyObject* self, PyObject* what);
// _start_tls(protocol, config, server_hostname, waiter): start_tls in place.
PyObject* tr_start_tls(PyObject* self, PyObject* const* args, Py_ssize_t nargs);
bool init_tls(PyObject* module);

#else  // built without OpenSSL: every transport is plain (t->tls stays null)

inline eddy::task<void> tls_read_loop(transport_object*, eddy::recv_buffer, bool) { co_return; }
inline PyObject* tls_write(transport_object*, const char*, Py_ssize_t, Py_buffer*) { Py_RETURN_NONE; }
inline void tls_close(transport_object*) {}
inline void tls_on_shutdown(transport_object*, PyObject*) {}
inline bool tls_attach(transport_object*, PyObject*, PyObject*, PyObject*, bool) {
  PyErr_SetString(PyExc_RuntimeError, "eddyloop was built without OpenSSL");
  return false;
}
inline PyObject* tls_extra(transport_object*, PyObject*) { return nullptr; }
inline void tls_free(transport_object*) {}
inline int tls_traverse(transport_object*, visitproc, void*) { return 0; }
inline void tls_clear(transport_object*) {}
inline void tls_release_input(transport_object*) {}
inline bool init_tls(PyObject*) { return true; }

#endif

}  // namespace eddypy::stream
