// The stream transport's object and the steps its files share (private to
// python/src/). The protocol of one transport is written at the top of
// transport.cpp; the files are split by concern: transport_read.cpp (reader task,
// delivery to the protocol), transport_write.cpp (write queue and writers),
// transport_lifecycle.cpp (errors, close, connection_lost), transport.cpp (the
// Python type and creation) and server.cpp (the accept loop).
#pragma once

#include <cstddef>
#include <string>

#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/join_handle.hpp>

#include "transport.hpp"

namespace eddypy::stream {

struct tls_layer;  // tls_transport.hpp: the TLS session of a TLS transport

struct transport_object {
  PyObject_HEAD
  // The type derives from asyncio.Transport (isinstance holds, as for asyncio's
  // own transports), whose instances carry one slot, BaseTransport's `_extra`,
  // right after the header: kept here at its offset, unused (get_extra_info reads
  // `extra`), so that the inherited `_extra` descriptor touches only this field.
  PyObject* asyncio_slot;
  core_object* core;
  PyObject* protocol;
  PyObject* data_received;  // bound method, or get_buffer for a BufferedProtocol
  PyObject* buffer_updated;  // BufferedProtocol only
  PyObject* server;          // asyncio.Server or None
  PyObject* extra;           // dict
  PyObject* sock;            // the socket.socket the fd came from (or made lazily)
  PyObject* weakrefs;
  // The socket, TCP or Unix: the transport needs only what both share. Its fd is
  // non-blocking and close-on-exec already (accept4 here, or asyncio's socket
  // after setblocking(False)), so it is wrapped without adoption's system calls.
  eddy::detail::stream_socket* stream;
  eddy::event* resume;       // reading resumed or shut down
  std::string* wbuf;
  std::size_t wpos;
  std::size_t inflight;      // bytes handed to an io_uring write, not yet completed
  eddy::join_handle<void>* reader;
  eddy::join_handle<void>* writer;
  Py_ssize_t high;
  Py_ssize_t low;
  int fd;
  bool reading_paused;
  bool closing;
  bool eof_written;
  bool shut_down;   // connection_lost is queued or done
  bool protocol_paused;
  bool flush_queued;  // epoll: a flush_turn callback is on the loop's ready queue
  // TLS (tls_transport.cpp): null on a plain transport. The bytes the socket
  // carries are ciphertext then; the protocol sees the plaintext.
  tls_layer* tls;
  std::size_t tls_held;  // plaintext write() took, not encrypted yet (in pending())
  bool app_silent;   // the protocol has not had connection_made (TLS handshake): no connection_lost
  bool close_wait;   // TLS close: the socket stays open for the peer's close_notify
  bool sendfile_busy;  // loop.sendfile()'s native path runs: write() refuses, as asyncio's
};

inline transport_object* as_tr(PyObject* o) { return reinterpret_cast<transport_object*>(o); }
inline PyObject* as_obj(transport_object* t) { return reinterpret_cast<PyObject*>(t); }

// Bytes for the socket: in the write queue or in an io_uring send.
inline std::size_t queued(const transport_object* t) { return t->wbuf->size() - t->wpos + t->inflight; }
// The write buffer's size as asyncio counts it: queued, plus TLS plaintext not encrypted yet.
inline std::size_t pending(const transport_object* t) { return queued(t) + t->tls_held; }

extern PyObject* g_transport_socket;  // asyncio.trsock.TransportSocket
extern PyObject* g_socket_type;       // socket.socket
extern PyObject* g_buffered_protocol; // asyncio.BufferedProtocol

// transport_lifecycle.cpp
void fatal_error(transport_object* t, const char* message);
void call_protocol_noargs(transport_object* t, const char* name, const char* message);
void set_errno_error(int err);
void release_fd(transport_object* t);
// Takes t out of its core's fd -> transport map (release_fd, and dealloc to be sure).
void forget_fd(transport_object* t);
void shutdown(transport_object* t, PyObject* exc);
PyObject* tr_close(PyObject* self, PyObject*);
PyObject* tr_abort(PyObject* self, PyObject*);
PyObject* tr_sendfile_fd(PyObject* self, PyObject*);
PyObject* tr_force_close(PyObject* self, PyObject* exc);
PyObject* tr_is_closing(PyObject* self, PyObject*);

// transport_write.cpp
void maybe_pause_protocol(transport_object* t);
// Queues bytes for the socket and starts whatever sends them on this backend
// (step 3). Returns null with a Python error only once the loop is closed.
PyObject* queue_out(transport_object* t, const char* p, Py_ssize_t n, Py_buffer* view);
// Closing and no bytes left to send: the transport may end now.
bool may_end(const transport_object* t);
void maybe_resume_protocol(transport_object* t);
PyObject* tr_write(PyObject* self, PyObject* data);
PyObject* tr_writelines(PyObject* self, PyObject* lines);
PyObject* tr_write_eof(PyObject* self, PyObject*);
PyObject* tr_can_write_eof(PyObject* self, PyObject*);

// transport_read.cpp
eddy::task<void> read_loop(transport_object* t);
// Hands p[off, n) to the protocol (data_received, or get_buffer/buffer_updated
// steps), advancing `off` by what it took; stops when reading is paused, the
// protocol goes or the transport shuts down. False after a fatal error.
bool deliver_span(transport_object* t, const char* p, Py_ssize_t n, Py_ssize_t& off);
// protocol.eof_received(); true if it raised SystemExit or KeyboardInterrupt.
bool on_eof(transport_object* t);
PyObject* tr_is_reading(PyObject* self, PyObject*);
PyObject* tr_pause_reading(PyObject* self, PyObject*);
PyObject* tr_resume_reading(PyObject* self, PyObject*);

// transport.cpp
// Builds a transport for `fd` (owned from here on) and queues step 1.
// With `tls` (a _core.TLSConfig, or null/None for plain) the transport runs TLS.
PyObject* new_transport(core_object* core, int fd, PyObject* sock, PyObject* protocol, PyObject* waiter,
                        PyObject* extra, PyObject* server, PyObject* tls = nullptr,
                        PyObject* server_hostname = nullptr);
// Takes the protocol's methods (data_received, or get_buffer/buffer_updated).
bool set_protocol_refs(transport_object* t, PyObject* protocol);

}  // namespace eddypy::stream

namespace eddypy {
extern PyTypeObject serving_type;  // server.cpp: what serve() returns
}  // namespace eddypy
