// eddyloop's stream transport: asyncio.Transport over an eddy stream socket. This
// file holds its Python type and its creation; the steps below live in
// transport_read.cpp (2), transport_write.cpp (3), transport_lifecycle.cpp (4)
// and server.cpp (the accept loop), sharing transport_object.hpp.
//
// Protocol of one transport:
//  1. Creation queues, in order: protocol.connection_made(transport), the reader
//     task, then waiter.set_result(None) (asyncio's _SelectorSocketTransport order).
//  2. The reader task owns the socket. It takes bytes with stream_socket::receive()
//     (on io_uring a multishot recv into the provided-buffer ring, on epoll the
//     readiness engine's blocks), copies each buffer into one bytes object and
//     calls protocol.data_received. A BufferedProtocol is read for as asyncio's
//     selector transport does: wait until the socket is readable, get_buffer(-1),
//     recv straight into that buffer, buffer_updated(n), one read per loop turn;
//     no Python buffer is held across a wait. (A protocol switched to buffered
//     after receive() was used gets receive()'s buffers copied into get_buffer's,
//     since the receiver owns the socket's incoming bytes then.) pause_reading()
//     parks it on an event; the buffers that keep arriving wait in eddy's
//     receiver (bounded) or in the kernel.
//  3. On io_uring, write() queues the bytes and a writer task hands them to the
//     ring as one write op per connection per turn (batched with every other
//     submission into the loop's io_uring_enter). On epoll, write() queues the
//     bytes and a callback queued behind the running one sends everything the
//     turn wrote in one send() (aiohttp writes a response as headers, then body:
//     one system call and one TCP segment instead of two); a write that takes
//     the queue above the high-water mark is sent at once instead, and with
//     EDDYLOOP_SEND_NOW every write is. What the kernel does not take waits in the
//     queue for a writer task that waits for POLLOUT through the backend. Above
//     the high-water mark the protocol gets pause_writing(), at or below the low
//     one resume_writing().
//  4. close() lets the queue drain, abort() drops it; both end in shutdown():
//     cancel the reader and writer and queue protocol.connection_lost(exc). The
//     reader's epilogue closes the fd (cancelling whatever is in flight on it),
//     so the fd is never closed under a running operation, and the writer checks
//     `fd < 0` after every wait, so it never touches a reused descriptor.
//  5. Loop close() cancels the reader tasks: the fds close, and no Python
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <span>
#include <string>
#include <system_error>

#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/join_handle.hpp>
#include <eddy/runtime/time.hpp>

#include "transport_object.hpp"
#include "tls_transport.hpp"

#include <structmember.h>  // after Python.h (module.hpp): PyMemberDef's T_PYSSIZET

namespace eddypy {
namespace stream {

PyObject* g_transport_socket = nullptr;  // asyncio.trsock.TransportSocket
PyObject* g_socket_type = nullptr;       // socket.socket
PyObject* g_buffered_protocol = nullptr; // asyncio.BufferedProtocol

namespace {

PyObject* tr_get_write_buffer_size(PyObject* self, PyObject*) {
  return PyLong_FromSize_t(pending(as_tr(self)));
}

PyObject* tr_get_write_buffer_limits(PyObject* self, PyObject*) {
  transport_object* t = as_tr(self);
  return Py_BuildValue("(nn)", t->low, t->high);
}

PyObject* tr_set_write_buffer_limits(PyObject* self, PyObject* args, PyObject* kwds) {
  static const char* kwlist[] = {"high", "low", nullptr};
  PyObject* high_o = Py_None;
  PyObject* low_o = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO", const_cast<char**>(kwlist), &high_o, &low_o))
    return nullptr;
  Py_ssize_t high, low;
  if (high_o == Py_None) {
    if (low_o == Py_None) high = 64 * 1024;
    else {
      low = PyNumber_AsSsize_t(low_o, PyExc_OverflowError);
      if (low == -1 && PyErr_Occurred()) return nullptr;
      high = 4 * low;
    }
  } else {
    high = PyNumber_AsSsize_t(high_o, PyExc_OverflowError);
    if (high == -1 && PyErr_Occurred()) return nullptr;
  }
  if (low_o == Py_None) low = high / 4;
  else {
    low = PyNumber_AsSsize_t(low_o, PyExc_OverflowError);
    if (low == -1 && PyErr_Occurred()) return nullptr;
  }
  if (!(high >= low && low >= 0)) {
    PyErr_Format(PyExc_ValueError, "high (%zd) must be >= low (%zd) must be >= 0", high, low);
    return nullptr;
  }
  transport_object* t = as_tr(self);
  t->high = high;
  t->low = low;
  maybe_pause_protocol(t);
  Py_RETURN_NONE;
}

PyObject* socket_object(transport_object* t) {
  if (t->sock != nullptr) return t->sock;
  if (t->fd < 0) return nullptr;
  PyObject* kw = Py_BuildValue("{s:i}", "fileno", t->fd);
  if (kw == nullptr) return nullptr;
  PyObject* empty = PyTuple_New(0);
  t->sock = empty != nullptr ? PyObject_Call(g_socket_type, empty, kw) : nullptr;
  Py_XDECREF(empty);
  Py_DECREF(kw);
  return t->sock;
}

PyObject* tr_get_extra_info(PyObject* self, PyObject* args, PyObject* kwds) {
  static const char* kwlist[] = {"name", "default", nullptr};
  PyObject* name;
  PyObject* dflt = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O", const_cast<char**>(kwlist), &name, &dflt))
    return nullptr;
  transport_object* t = as_tr(self);
  // tp_clear (the garbage collector breaking a cycle) drops the dict; a finalizer
  // in that cycle may still ask, so answer from an empty one rather than crash.
  if (t->extra == nullptr && (t->extra = PyDict_New()) == nullptr) return nullptr;
  PyObject* v = PyDict_GetItemWithError(t->extra, name);
  if (v != nullptr) return Py_NewRef(v);
  if (PyErr_Occurred()) return nullptr;
  if (!PyUnicode_Check(name)) return Py_NewRef(dflt);
  if (t->tls != nullptr) {
    v = tls_extra(t, name);
    if (v != nullptr || PyErr_Occurred()) return v;
  }
  if (t->fd < 0) return Py_NewRef(dflt);
  const char* n = PyUnicode_AsUTF8(name);
  if (n == nullptr) return nullptr;
  const bool is_sock = std::strcmp(n, "socket") == 0;
  const bool is_local = std::strcmp(n, "sockname") == 0;
  const bool is_peer = std::strcmp(n, "peername") == 0;
  if (!is_sock && !is_local && !is_peer) return Py_NewRef(dflt);
  PyObject* sock = socket_object(t);
  if (sock == nullptr) return nullptr;
  if (is_sock) {
    v = PyObject_CallOneArg(g_transport_socket, sock);
  } else {
    v = PyObject_CallMethod(sock, is_local ? "getsockname" : "getpeername", nullptr);
    if (v == nullptr && PyErr_ExceptionMatches(PyExc_OSError)) {
      PyErr_Clear();
      return Py_NewRef(dflt);
    }
  }
  if (v == nullptr) return nullptr;
  if (PyDict_SetItem(t->extra, name, v) < 0) {
    Py_DECREF(v);
    return nullptr;
  }
  return v;
}

}  // namespace

bool set_protocol_refs(transport_object* t, PyObject* protocol) {
  PyObject* dr = nullptr;
  PyObject* bu = nullptr;
  const int buffered = PyObject_IsInstance(protocol, g_buffered_protocol);
  if (buffered < 0) return false;
  if (buffered) {
    dr = PyObject_GetAttrString(protocol, "get_buffer");
    bu = dr != nullptr ? PyObject_GetAttrString(protocol, "buffer_updated") : nullptr;
    if (bu == nullptr) {
      Py_XDECREF(dr);
      return false;
    }
  } else {
    dr = PyObject_GetAttrString(protocol, "data_received");
    if (dr == nullptr) return false;
  }
  Py_XSETREF(t->protocol, Py_NewRef(protocol));
  Py_XSETREF(t->data_received, dr);
  Py_XSETREF(t->buffer_updated, bu);
  return true;
}

namespace {

PyObject* tr_set_protocol(PyObject* self, PyObject* protocol) {
  if (!set_protocol_refs(as_tr(self), protocol)) return nullptr;
  Py_RETURN_NONE;
}

PyObject* tr_get_protocol(PyObject* self, PyObject*) {
  transport_object* t = as_tr(self);
  return Py_NewRef(t->protocol != nullptr ? t->protocol : Py_None);
}

PyObject* tr_repr(PyObject* self) {
  transport_object* t = as_tr(self);
  return PyUnicode_FromFormat("<eddyloop.TCPTransport fd=%d%s%s>", t->fd, t->tls != nullptr ? " tls" : "",
                              t->shut_down ? " closed" : (t->closing ? " closing" : ""));
}

void tr_dealloc(PyObject* self) {
  transport_object* t = as_tr(self);
  PyObject_GC_UnTrack(self);
  forget_fd(t);  // normally gone with the fd already
  if (t->weakrefs != nullptr) PyObject_ClearWeakRefs(self);
  // Tasks hold references, so none is alive here; the fd went with the reader.
  delete t->stream;
  delete t->resume;
  delete t->wbuf;
  tls_free(t);
  Py_CLEAR(t->protocol);
  Py_CLEAR(t->data_received);
  Py_CLEAR(t->buffer_updated);
  Py_CLEAR(t->server);
  Py_CLEAR(t->extra);
  Py_CLEAR(t->sock);
  Py_CLEAR(t->core);
  Py_CLEAR(t->asyncio_slot);
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);  // instances of a heap type hold a reference to it
}

int tr_traverse(PyObject* self, visitproc visit, void* arg) {
  transport_object* t = as_tr(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(t->protocol);
  Py_VISIT(t->data_received);
  Py_VISIT(t->buffer_updated);
  Py_VISIT(t->server);
  Py_VISIT(t->extra);
  Py_VISIT(t->asyncio_slot);
  return t->tls != nullptr ? tls_traverse(t, visit, arg) : 0;
}

int tr_clear(PyObject* self) {
  transport_object* t = as_tr(self);
  Py_CLEAR(t->protocol);
  Py_CLEAR(t->data_received);
  Py_CLEAR(t->buffer_updated);
  Py_CLEAR(t->extra);
  Py_CLEAR(t->asyncio_slot);
  if (t->tls != nullptr) tls_clear(t);
  return 0;
}

PyMethodDef tr_methods[] = {
    {"write", tr_write, METH_O, "Queue bytes to send; never blocks."},
    {"writelines", tr_writelines, METH_O, "write(b''.join(lines)) in one send."},
    {"write_eof", tr_write_eof, METH_NOARGS, "Half-close once the queued bytes are sent."},
    {"can_write_eof", tr_can_write_eof, METH_NOARGS, nullptr},
    {"close", tr_close, METH_NOARGS, "Close after the queued bytes are sent."},
    {"abort", tr_abort, METH_NOARGS, "Close now, dropping queued bytes."},
    {"_force_close", tr_force_close, METH_O, "abort(), passing exc (or None) to connection_lost."},
    {"_sendfile_fd", tr_sendfile_fd, METH_NOARGS, "The socket fd for loop.sendfile(), -1 once closing."},
    {"is_closing", tr_is_closing, METH_NOARGS, nullptr},
    {"is_reading", tr_is_reading, METH_NOARGS, nullptr},
    {"pause_reading", tr_pause_reading, METH_NOARGS, nullptr},
    {"resume_reading", tr_resume_reading, METH_NOARGS, nullptr},
    {"get_write_buffer_size", tr_get_write_buffer_size, METH_NOARGS, nullptr},
    {"get_write_buffer_limits", tr_get_write_buffer_limits, METH_NOARGS, nullptr},
    {"set_write_buffer_limits", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tr_set_write_buffer_limits)),
     METH_VARARGS | METH_KEYWORDS, nullptr},
    {"get_extra_info", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tr_get_extra_info)),
     METH_VARARGS | METH_KEYWORDS, nullptr},
    {"set_protocol", tr_set_protocol, METH_O, nullptr},
    {"get_protocol", tr_get_protocol, METH_NOARGS, nullptr},
#ifdef EDDYLOOP_TLS
    {"_tls_query", tr_tls_query, METH_O, "What eddyloop.tls's ssl_object asks of the TLS session."},
    {"_start_tls", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(tr_start_tls)), METH_FASTCALL,
     "_start_tls(protocol, config, server_hostname, waiter): TLS in place (loop.start_tls)."},
#endif
    {nullptr, nullptr, 0, nullptr},
};

// Step 1. A TLS transport makes the protocol's connection_made and the waiter's
// result wait for the handshake (tls_transport.cpp) instead.
void queue_connection_made(transport_object* t, PyObject* waiter) {
  eddy::loop& l = *t->core->loop;
  if (t->tls != nullptr) {
    Py_INCREF(as_obj(t));  // the reader's reference
    t->reader = new eddy::join_handle<void>(l.spawn(read_loop(t)));
    return;
  }
  l.call_soon([r = ref(as_obj(t))] {
    transport_object* t = as_tr(r.get());
    if (t->protocol == nullptr || t->core->closed) return;
    const ref protocol(t->protocol);
    PyObject* res = PyObject_CallMethod(protocol.get(), "connection_made", "O", as_obj(t));
    if (res == nullptr) {
      const bool fatal =
          PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
      report_error(t->core, "Exception in callback connection_made", "transport", as_obj(t), "protocol",
                   protocol.get());
      if (!fatal) shutdown(t, nullptr);
    }
    Py_XDECREF(res);
  });
  Py_INCREF(as_obj(t));  // the reader's reference
  t->reader = new eddy::join_handle<void>(l.spawn(read_loop(t)));
  if (waiter != nullptr && waiter != Py_None) {
    l.call_soon([w = ref(waiter)] {
      PyObject* c = PyObject_CallMethod(w.get(), "cancelled", nullptr);
      const int cancelled = c != nullptr ? PyObject_IsTrue(c) : -1;
      Py_XDECREF(c);
      PyObject* r = cancelled == 0 ? PyObject_CallMethod(w.get(), "set_result", "O", Py_None) : nullptr;
      if (r == nullptr && PyErr_Occurred()) PyErr_WriteUnraisable(w.get());
      Py_XDECREF(r);
    });
  }
}

PyObject* tr_protocol_paused(PyObject* self, void*) { return PyBool_FromLong(as_tr(self)->protocol_paused); }

// loop.start_tls() checks for it: set_protocol() swaps protocols (BufferedProtocol
// included) and bytes that arrive while reading is paused wait for resume_reading().
PyObject* tr_start_tls_compatible(PyObject*, void*) { Py_RETURN_TRUE; }

PyObject* tr_is_tls(PyObject* self, void*) { return PyBool_FromLong(as_tr(self)->tls != nullptr); }

PyObject* tr_sendfile_busy(PyObject* self, void*) { return PyBool_FromLong(as_tr(self)->sendfile_busy); }
int tr_set_sendfile_busy(PyObject* self, PyObject* v, void*) {
  const int on = v != nullptr ? PyObject_IsTrue(v) : 0;
  if (on < 0) return -1;
  as_tr(self)->sendfile_busy = on != 0;
  return 0;
}

PyGetSetDef tr_getset[] = {
    {"_protocol_paused", tr_protocol_paused, nullptr, "pause_writing() was called (asyncio's sendfile reads it)",
     nullptr},
    {"_start_tls_compatible", tr_start_tls_compatible, nullptr, "loop.start_tls() may upgrade this transport",
     nullptr},
    {"_is_tls", tr_is_tls, nullptr, "TLS runs in this transport (eddyloop's C TLS)", nullptr},
    {"_sendfile_busy", tr_sendfile_busy, tr_set_sendfile_busy,
     "loop.sendfile()'s native path is running: write() raises RuntimeError meanwhile", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};


}  // namespace
}  // namespace stream

using namespace stream;

PyTypeObject* transport_type = nullptr;

PyObject* stream::new_transport(core_object* core, int fd, PyObject* sock, PyObject* protocol, PyObject* waiter,
                                PyObject* extra, PyObject* server, PyObject* tls, PyObject* server_hostname) {
  auto* t = PyObject_GC_New(transport_object, transport_type);
  if (t == nullptr) {
    ::close(fd);
    return nullptr;
  }
  t->asyncio_slot = nullptr;
  t->core = reinterpret_cast<core_object*>(Py_NewRef(reinterpret_cast<PyObject*>(core)));
  t->protocol = t->data_received = t->buffer_updated = nullptr;
  t->server = Py_NewRef(server != nullptr ? server : Py_None);
  t->extra = extra != nullptr && extra != Py_None ? PyDict_Copy(extra) : PyDict_New();
  t->sock = Py_XNewRef(sock);
  t->weakrefs = nullptr;
  t->stream = nullptr;
  t->resume = new eddy::event();
  t->wbuf = new std::string();
  t->wpos = 0;
  t->inflight = 0;
  t->reader = t->writer = nullptr;
  t->high = 64 * 1024;
  t->low = 16 * 1024;
  t->fd = fd;
  t->reading_paused = t->closing = t->eof_written = t->shut_down = t->protocol_paused = false;
  t->flush_queued = false;
  t->tls = nullptr;
  t->tls_held = 0;
  t->app_silent = t->close_wait = t->sendfile_busy = false;
  PyObject_GC_Track(as_obj(t));
  if (t->extra == nullptr || !set_protocol_refs(t, protocol)) {
    t->fd = -1;
    ::close(fd);
    if (sock != nullptr) Py_XDECREF(PyObject_CallMethod(sock, "detach", nullptr));
    Py_DECREF(t);
    return nullptr;
  }
  try {
    t->stream = new eddy::detail::stream_socket(eddy::unique_fd(fd));
    if (server != nullptr && server != Py_None) {
      PyObject* r = PyObject_CallMethod(server, "_attach", nullptr);
      if (r == nullptr) throw std::runtime_error("Server._attach failed");
      Py_DECREF(r);
    }
    if (tls != nullptr && tls != Py_None && !tls_attach(t, tls, server_hostname, waiter, true))
      throw std::runtime_error("TLS set-up failed");
    queue_connection_made(t, waiter);
    (*core->transports)[fd] = as_obj(t);  // until release_fd
  } catch (...) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "eddyloop: cannot start the transport");
    if (t->stream == nullptr) ::close(fd);
    t->shut_down = true;
    release_fd(t);
    Py_DECREF(t);
    return nullptr;
  }
  return as_obj(t);
}

PyObject* transport_of_fd(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyObject_TypeCheck(args[0], &core_type)) {
    PyErr_SetString(PyExc_TypeError, "transport_of_fd(core, fd)");
    return nullptr;
  }
  auto* core = reinterpret_cast<core_object*>(args[0]);
  const long fd = PyLong_AsLong(args[1]);
  if (fd == -1 && PyErr_Occurred()) return nullptr;
  if (core->transports != nullptr) {
    const auto it = core->transports->find(static_cast<int>(fd));
    if (it != core->transports->end()) return Py_NewRef(it->second);
  }
  Py_RETURN_NONE;
}

PyObject* make_stream_transport(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if ((nargs != 6 && nargs != 8) || !PyObject_TypeCheck(args[0], &core_type)) {
    PyErr_SetString(PyExc_TypeError,
                    "make_stream_transport(core, sock, protocol, waiter, extra, server[, tls, server_hostname])");
    return nullptr;
  }
  auto* core = reinterpret_cast<core_object*>(args[0]);
  if (!check_open(core)) return nullptr;
  PyObject* fdo = PyObject_CallMethod(args[1], "fileno", nullptr);
  if (fdo == nullptr) return nullptr;
  const long fd = PyLong_AsLong(fdo);
  Py_DECREF(fdo);
  if (fd < 0) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "the socket is closed");
    return nullptr;
  }
  // The backends need a non-blocking fd; asyncio's own paths set it, a caller of
  // _make_socket_transport may not. Through the socket object, so it agrees.
  PyObject* r = PyObject_CallMethod(args[1], "setblocking", "O", Py_False);
  if (r == nullptr) return nullptr;
  Py_DECREF(r);
  return new_transport(core, static_cast<int>(fd), args[1], args[2], args[3], args[4], args[5],
                       nargs == 8 ? args[6] : nullptr, nargs == 8 ? args[7] : nullptr);
}

// The transport type, made at import as a subclass of asyncio.Transport:
// `isinstance(tr, asyncio.Transport)` (and ReadTransport, WriteTransport,
// BaseTransport) holds as for asyncio's own transports (CPython's test_events
// checks it; uvloop's transports fail it). A heap type, as CPython requires of a
// subclass of a heap type. asyncio.Transport's instances must be laid out as
// transport_object begins (the header, then BaseTransport's one slot): checked,
// so that another Python's layout fails the import loudly instead of letting the
// inherited `_extra` descriptor write into our fields.
bool make_transport_type() {
  PyObject* transports = PyImport_ImportModule("asyncio.transports");
  if (transports == nullptr) return false;
  PyObject* base = PyObject_GetAttrString(transports, "Transport");
  Py_DECREF(transports);
  if (base == nullptr) return false;
  auto* bt = reinterpret_cast<PyTypeObject*>(base);
  if (!PyType_Check(base) || bt->tp_basicsize != static_cast<Py_ssize_t>(offsetof(transport_object, core)) ||
      bt->tp_dictoffset != 0 || bt->tp_itemsize != 0) {
    PyErr_Format(PyExc_ImportError,
                 "eddyloop: asyncio.Transport's instance layout (%zd bytes) is not the one eddyloop's "
                 "transport extends (%zu)", bt->tp_basicsize, offsetof(transport_object, core));
    Py_DECREF(base);
    return false;
  }
  static PyMemberDef members[] = {
      {"__weaklistoffset__", T_PYSSIZET, offsetof(transport_object, weakrefs), READONLY, nullptr},
      {nullptr, 0, 0, 0, nullptr},
  };
  static PyType_Slot slots[] = {
      {Py_tp_dealloc, reinterpret_cast<void*>(tr_dealloc)},
      {Py_tp_traverse, reinterpret_cast<void*>(tr_traverse)},
      {Py_tp_clear, reinterpret_cast<void*>(tr_clear)},
      {Py_tp_repr, reinterpret_cast<void*>(tr_repr)},
      {Py_tp_methods, tr_methods},
      {Py_tp_getset, tr_getset},
      {Py_tp_members, members},
      {Py_tp_doc, const_cast<char*>("A stream transport on an eddy socket (an asyncio.Transport).")},
      {0, nullptr},
  };
  static PyType_Spec spec = {"eddyloop._core.TCPTransport", static_cast<int>(sizeof(transport_object)), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                             slots};
  PyObject* bases = PyTuple_Pack(1, base);
  Py_DECREF(base);
  if (bases == nullptr) return false;
  transport_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpecWithBases(&spec, bases));
  Py_DECREF(bases);
  return transport_type != nullptr;  // kept for the life of the process
}

bool init_transports(PyObject* module) {
  if (!make_transport_type() || PyType_Ready(&serving_type) < 0) return false;
  PyObject* trsock = PyImport_ImportModule("asyncio.trsock");
  PyObject* socket = PyImport_ImportModule("socket");
  PyObject* protocols = PyImport_ImportModule("asyncio.protocols");
  if (trsock == nullptr || socket == nullptr || protocols == nullptr) return false;
  g_transport_socket = PyObject_GetAttrString(trsock, "TransportSocket");
  g_socket_type = PyObject_GetAttrString(socket, "socket");
  g_buffered_protocol = PyObject_GetAttrString(protocols, "BufferedProtocol");
  Py_DECREF(trsock);
  Py_DECREF(socket);
  Py_DECREF(protocols);
  if (g_transport_socket == nullptr || g_socket_type == nullptr || g_buffered_protocol == nullptr) return false;
  // loop.sendfile() copies through write() (asyncio's fallback); no native sendfile yet.
  PyObject* constants = PyImport_ImportModule("asyncio.constants");
  PyObject* mode = constants != nullptr ? PyObject_GetAttrString(constants, "_SendfileMode") : nullptr;
  PyObject* fallback = mode != nullptr ? PyObject_GetAttrString(mode, "FALLBACK") : nullptr;
  Py_XDECREF(constants);
  Py_XDECREF(mode);
  if (fallback == nullptr) return false;
  const int rc = PyObject_SetAttrString(reinterpret_cast<PyObject*>(transport_type), "_sendfile_compatible", fallback);
  Py_DECREF(fallback);
  if (rc < 0) return false;
  Py_INCREF(transport_type);
  return PyModule_AddObject(module, "TCPTransport", reinterpret_cast<PyObject*>(transport_type)) == 0;
}

}  // namespace eddypy
