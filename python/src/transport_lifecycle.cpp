// The stream transport's errors and its end: fatal_error (asyncio's _fatal_error),
// close/abort, shutdown() and the queued connection_lost (step 4 of the protocol
// in transport.cpp).
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

namespace eddypy::stream {

void shutdown(transport_object* t, PyObject* exc);

// A protocol method failed: asyncio's _fatal_error. OSError is expected (peer
// went away) and not reported; anything else goes to the exception handler.
void fatal_error(transport_object* t, const char* message) {
  if (PyErr_ExceptionMatches(PyExc_OSError) && !PyErr_ExceptionMatches(PyExc_SystemExit)) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    shutdown(t, value);
    Py_XDECREF(value);
    return;
  }
  if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
    // asyncio's transports let these through untouched (`except (SystemExit,
    // KeyboardInterrupt): raise`): out of run_forever, the connection left open.
    report_error(t->core, message);
    return;
  }
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != nullptr && value != nullptr) PyException_SetTraceback(value, tb);
  PyObject* keep = Py_XNewRef(value);
  PyErr_Restore(type, value, tb);
  report_error(t->core, message, "transport", as_obj(t), "protocol",
               t->protocol != nullptr ? t->protocol : Py_None);
  shutdown(t, keep);
  Py_XDECREF(keep);
}

// Every protocol call below holds the protocol (or the bound method) by a strong
// reference of its own: the callee may call set_protocol(), which drops the
// transport's references while the call is still running.
void call_protocol_noargs(transport_object* t, const char* name, const char* message) {
  if (t->protocol == nullptr) return;
  const ref protocol(t->protocol);
  PyObject* r = PyObject_CallMethod(protocol.get(), name, nullptr);
  if (r == nullptr) report_error(t->core, message, "transport", as_obj(t), "protocol", protocol.get());
  Py_XDECREF(r);
}

void set_errno_error(int err) {
  errno = err;
  PyErr_SetFromErrno(PyExc_OSError);
}

// The fd is closed by the reader only; afterwards the socket object (if any)
// must not close it a second time.
void forget_fd(transport_object* t) {
  if (t->fd < 0 || t->core == nullptr || t->core->transports == nullptr) return;
  const auto it = t->core->transports->find(t->fd);
  if (it != t->core->transports->end() && it->second == as_obj(t)) t->core->transports->erase(it);
}

void release_fd(transport_object* t) {
  forget_fd(t);
  if (t->tls != nullptr) tls_release_input(t);  // a receive buffer is the loop's: back before the loop goes
  if (t->stream != nullptr) {
    delete t->stream;  // closes the fd, cancelling operations still in flight on it
    t->stream = nullptr;
  }
  t->fd = -1;
  if (t->sock != nullptr) {
    PyObject* r = PyObject_CallMethod(t->sock, "detach", nullptr);
    if (r == nullptr) PyErr_Clear();
    Py_XDECREF(r);
  }
}

void connection_lost(transport_object* t, PyObject* exc) {
  if (t->protocol != nullptr && !t->app_silent) {
    const ref protocol(t->protocol);
    PyObject* r = PyObject_CallMethod(protocol.get(), "connection_lost", "O", exc != nullptr ? exc : Py_None);
    if (r == nullptr)
      report_error(t->core, "Exception in callback connection_lost", "transport", as_obj(t), "protocol",
                   protocol.get());
    Py_XDECREF(r);
  }
  Py_CLEAR(t->protocol);
  Py_CLEAR(t->data_received);
  Py_CLEAR(t->buffer_updated);
  if (t->server != nullptr && t->server != Py_None) {
    PyObject* r = PyObject_CallMethod(t->server, "_detach", nullptr);
    if (r == nullptr) report_error(t->core, "Exception in Server._detach");
    Py_XDECREF(r);
  }
  Py_CLEAR(t->server);
}

// Queues connection_lost(exc) and ends the reader and writer (step 4).
void shutdown(transport_object* t, PyObject* exc) {
  if (t->shut_down) return;
  t->shut_down = true;
  t->closing = true;
  t->wbuf->clear();
  t->wpos = 0;
  if (t->reader != nullptr) t->reader->cancel();
  if (t->writer != nullptr) t->writer->cancel();
  t->resume->set();
  if (t->tls != nullptr) tls_on_shutdown(t, exc);
  if (t->core->closed) return;
  try {
    t->core->loop->call_soon([r = ref(as_obj(t)), e = ref(exc)] { connection_lost(as_tr(r.get()), e.get()); });
  } catch (...) {
  }
}

PyObject* tr_close(PyObject* self, PyObject*) {
  transport_object* t = as_tr(self);
  if (t->closing) Py_RETURN_NONE;
  t->closing = true;
  t->resume->set();
  if (t->tls != nullptr) tls_close(t);  // close_notify, then wait for the peer's
  if (may_end(t)) shutdown(t, nullptr);
  Py_RETURN_NONE;
}

PyObject* tr_abort(PyObject* self, PyObject*) {
  shutdown(as_tr(self), nullptr);
  Py_RETURN_NONE;
}

// _sendfile_fd(): the socket's descriptor for loop.sendfile()'s os.sendfile, or
// -1 once the transport is closing (the descriptor may be closed or reused then).
// Valid until control returns to the loop: check again after every await.
PyObject* tr_sendfile_fd(PyObject* self, PyObject*) {
  transport_object* t = as_tr(self);
  return PyLong_FromLong(t->closing ? -1 : t->fd);  // shut_down sets closing too
}

// _force_close(exc): abort(), with `exc` (None or an exception) handed to
// connection_lost. asyncio's SSLProtocol ends its transport this way on a fatal
// TLS error or a handshake or shutdown timeout, as selector transports allow.
PyObject* tr_force_close(PyObject* self, PyObject* exc) {
  if (exc != Py_None && !PyExceptionInstance_Check(exc)) {
    PyErr_Format(PyExc_TypeError, "_force_close() takes None or an exception, not %.100s",
                 Py_TYPE(exc)->tp_name);
    return nullptr;
  }
  shutdown(as_tr(self), exc == Py_None ? nullptr : exc);
  Py_RETURN_NONE;
}

PyObject* tr_is_closing(PyObject* self, PyObject*) { return PyBool_FromLong(as_tr(self)->closing); }

}  // namespace eddypy::stream
