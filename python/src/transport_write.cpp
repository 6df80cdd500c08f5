// The stream transport's write path (step 3 of the protocol in transport.cpp):
// the write queue, the io_uring and POLLOUT writers, the epoll per-turn flush,
// write()/writelines()/write_eof() and the pause_writing/resume_writing marks.
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

void maybe_pause_protocol(transport_object* t) {
  if (t->protocol_paused || static_cast<Py_ssize_t>(pending(t)) <= t->high) return;
  t->protocol_paused = true;
  call_protocol_noargs(t, "pause_writing", "protocol.pause_writing() failed");
}

void maybe_resume_protocol(transport_object* t) {
  if (!t->protocol_paused || static_cast<Py_ssize_t>(pending(t)) > t->low) return;
  t->protocol_paused = false;
  call_protocol_noargs(t, "resume_writing", "protocol.resume_writing() failed");
}

bool may_end(const transport_object* t) { return t->closing && !t->close_wait && pending(t) == 0; }

void finish_writes(transport_object* t) {
  if (pending(t) != 0 || t->shut_down) return;
  if (t->eof_written && t->fd >= 0) ::shutdown(t->fd, SHUT_WR);
  if (may_end(t)) shutdown(t, nullptr);
}

eddy::task<void> write_loop(transport_object* t) {
  // t: a strong reference taken by start_writer, released at the end.
  try {
    while (queued(t) != 0 && t->fd >= 0 && !t->shut_down) {
      co_await eddy::poll(t->fd, POLLOUT);
      if (t->fd < 0 || t->shut_down) break;
      const ssize_t n = ::send(t->fd, t->wbuf->data() + t->wpos, queued(t), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        set_errno_error(errno);
        fatal_error(t, "Fatal write error on socket transport");
        break;
      }
      t->wpos += static_cast<std::size_t>(n);
      if (t->wpos == t->wbuf->size()) {
        t->wbuf->clear();
        t->wpos = 0;
      }
      maybe_resume_protocol(t);
    }
  } catch (const eddy::cancelled_error&) {
  } catch (const std::system_error& e) {
    if (!t->shut_down && !t->core->closed) {
      set_errno_error(e.code().value());
      fatal_error(t, "Fatal write error on socket transport");
    }
  }
  delete t->writer;
  t->writer = nullptr;
  if (!t->core->closed) finish_writes(t);
  Py_DECREF(as_obj(t));
}

// io_uring: what write() queued in this turn goes out as one write op, submitted
// with the loop's next io_uring_enter together with every other connection's,
// instead of one send() system call per write(). The fd is used, not the stream
// object, which the reader may delete meanwhile; closing the fd through eddy
// cancels the op first.
eddy::task<void> ring_write_loop(transport_object* t) {
  // t: a strong reference taken by start_writer, released at the end.
  std::string out;
  try {
    while (t->wbuf->size() != t->wpos && t->fd >= 0 && !t->shut_down) {
      if (t->wpos != 0) t->wbuf->erase(0, t->wpos);
      t->wpos = 0;
      out.swap(*t->wbuf);
      t->inflight = out.size();
      std::size_t off = 0;
      while (off < out.size()) {
        // A send op, not a write: io_uring goes straight to sock_sendmsg instead of
        // through the file write path (about 2% of the server's CPU on 1 KiB echo).
        const std::size_t n = co_await eddy::detail::size_awaiter(
            eddy::loop::current(), "eddy: send", eddy::detail::op_code::send, t->fd, out.data() + off,
            eddy::detail::clamp_len(out.size() - off));
        off += n;
        t->inflight = out.size() - off;
        if (t->fd < 0 || t->shut_down) break;
      }
      out.clear();
      t->inflight = 0;
      if (t->fd < 0 || t->shut_down) break;
      maybe_resume_protocol(t);
    }
  } catch (const eddy::cancelled_error&) {
  } catch (const std::system_error& e) {
    if (!t->shut_down && !t->core->closed) {
      t->inflight = 0;
      set_errno_error(e.code().value());
      fatal_error(t, "Fatal write error on socket transport");
    }
  }
  t->inflight = 0;
  delete t->writer;
  t->writer = nullptr;
  if (!t->core->closed) finish_writes(t);
  Py_DECREF(as_obj(t));
}

void start_writer(transport_object* t) {
  if (t->writer != nullptr) return;
  Py_INCREF(as_obj(t));
  t->writer = new eddy::join_handle<void>(
      t->core->loop->spawn(t->core->ring_writes ? ring_write_loop(t) : write_loop(t)));
}

// epoll: one send() of everything queued. False after a fatal error (reported,
// the transport shut down).
bool send_queued(transport_object* t) {
  const ssize_t n = ::send(t->fd, t->wbuf->data() + t->wpos, queued(t), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return true;
    set_errno_error(errno);
    fatal_error(t, "Fatal write error on socket transport");
    return false;
  }
  t->wpos += static_cast<std::size_t>(n);
  if (t->wpos == t->wbuf->size()) {
    t->wbuf->clear();  // keeps the capacity for the next turn's bytes
    t->wpos = 0;
  }
  return true;
}

// epoll: sends what was queued and hands a rest the kernel did not take to the
// POLLOUT writer. Called from write() (send now) or from the end-of-turn flush.
void send_or_wait(transport_object* t) {
  if (!send_queued(t)) return;
  if (queued(t) != 0) {
    // spawn throws only once the loop is closed; the queued bytes go with it then,
    // and nothing may escape into write()'s caller (C) or the loop's callback.
    try {
      start_writer(t);
    } catch (...) {
    }
    return;
  }
  maybe_resume_protocol(t);
  finish_writes(t);  // a close() or write_eof() that waited for these bytes
}

// epoll: the end of the turn in which write() first queued bytes. Runs after the
// callbacks that were already queued (asyncio Task steps, data_received), so
// every write() of a response made in between goes out in this one send().
void flush_turn(transport_object* t) {
  t->flush_queued = false;
  if (t->shut_down || t->fd < 0 || t->writer != nullptr || queued(t) == 0) return;
  send_or_wait(t);
}

// epoll: write() queued bytes on a transport with nothing in flight. Throws
// loop_closed_error after the loop closed.
void schedule_flush(transport_object* t) {
  if (t->flush_queued || t->writer != nullptr) return;
  t->core->loop->call_soon([r = ref(as_obj(t))] { flush_turn(as_tr(r.get())); });
  t->flush_queued = true;
}

// Takes a writable view of get_buffer()'s result and drops the reference. A

// epoll (step 3): queue the bytes for this turn's flush; past the high-water
// mark, send at once rather than pause the protocol for bytes the kernel may take.
PyObject* write_per_turn(transport_object* t, const char* p, Py_ssize_t n, Py_buffer* view) {
  t->wbuf->append(p, static_cast<std::size_t>(n));
  if (view != nullptr) PyBuffer_Release(view);
  if (t->writer != nullptr) {
    maybe_pause_protocol(t);  // the POLLOUT writer sends it
    Py_RETURN_NONE;
  }
  if (static_cast<Py_ssize_t>(pending(t)) > t->high) {
    send_or_wait(t);
    if (!t->shut_down) maybe_pause_protocol(t);
    Py_RETURN_NONE;
  }
  try {
    schedule_flush(t);
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* queue_out(transport_object* t, const char* p, Py_ssize_t n, Py_buffer* view) {
  if (t->core->ring_writes) {
    t->wbuf->append(p, static_cast<std::size_t>(n));
  } else if (!t->core->send_now) {
    return write_per_turn(t, p, n, view);
  } else if (queued(t) == 0) {
    const ssize_t w = ::send(t->fd, p, static_cast<std::size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w == n) {
      if (view != nullptr) PyBuffer_Release(view);
      Py_RETURN_NONE;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      if (view != nullptr) PyBuffer_Release(view);
      set_errno_error(errno);
      fatal_error(t, "Fatal write error on socket transport");
      Py_RETURN_NONE;
    }
    const std::size_t done = w > 0 ? static_cast<std::size_t>(w) : 0;
    t->wbuf->append(p + done, static_cast<std::size_t>(n) - done);
  } else {
    t->wbuf->append(p, static_cast<std::size_t>(n));
  }
  if (view != nullptr) PyBuffer_Release(view);
  try {
    start_writer(t);
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return nullptr;
  }
  maybe_pause_protocol(t);
  Py_RETURN_NONE;
}


PyObject* tr_write(PyObject* self, PyObject* data) {
  transport_object* t = as_tr(self);
  const char* p;
  Py_ssize_t n;
  Py_buffer view{};
  bool have_view = false;
  if (PyBytes_CheckExact(data)) {
    p = PyBytes_AS_STRING(data);
    n = PyBytes_GET_SIZE(data);
  } else {
    if (!PyObject_CheckBuffer(data) || PyUnicode_Check(data)) {
      PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.100s'",
                   Py_TYPE(data)->tp_name);
      return nullptr;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
    have_view = true;
    p = static_cast<const char*>(view.buf);
    n = view.len;
  }
  if (t->eof_written) {
    if (have_view) PyBuffer_Release(&view);
    PyErr_SetString(PyExc_RuntimeError, "Cannot call write() after write_eof()");
    return nullptr;
  }
  if (t->sendfile_busy) {  // asyncio's selector transport, in the same order of checks
    if (have_view) PyBuffer_Release(&view);
    PyErr_SetString(PyExc_RuntimeError, "unable to write; sendfile is in progress");
    return nullptr;
  }
  if (n == 0 || t->closing || t->fd < 0) {
    if (have_view) PyBuffer_Release(&view);
    Py_RETURN_NONE;
  }
  if (t->tls != nullptr) return tls_write(t, p, n, have_view ? &view : nullptr);
  return queue_out(t, p, n, have_view ? &view : nullptr);
}

PyObject* tr_writelines(PyObject* self, PyObject* lines) {
  PyObject* it = PyObject_GetIter(lines);
  if (it == nullptr) return nullptr;
  // One write for the lot: join, then one send (asyncio does the same with sendmsg).
  PyObject* joined = PyBytes_FromStringAndSize(nullptr, 0);
  PyObject* item;
  while (joined != nullptr && (item = PyIter_Next(it)) != nullptr) {
    Py_buffer v;
    if (PyUnicode_Check(item) || PyObject_GetBuffer(item, &v, PyBUF_SIMPLE) < 0) {
      if (!PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.100s'",
                     Py_TYPE(item)->tp_name);
      Py_DECREF(item);
      Py_CLEAR(joined);
      break;
    }
    PyObject* chunk = PyBytes_FromStringAndSize(static_cast<const char*>(v.buf), v.len);
    PyBuffer_Release(&v);
    Py_DECREF(item);
    if (chunk == nullptr) {
      Py_CLEAR(joined);
      break;
    }
    PyBytes_ConcatAndDel(&joined, chunk);
  }
  Py_DECREF(it);
  if (joined == nullptr || PyErr_Occurred()) {
    Py_XDECREF(joined);
    return nullptr;
  }
  PyObject* r = tr_write(self, joined);
  Py_DECREF(joined);
  return r;
}

PyObject* tr_write_eof(PyObject* self, PyObject*) {
  transport_object* t = as_tr(self);
  if (t->tls != nullptr) {
    PyErr_SetNone(PyExc_NotImplementedError);  // as asyncio's SSL transport: no half-close over TLS
    return nullptr;
  }
  if (t->closing || t->eof_written) Py_RETURN_NONE;
  t->eof_written = true;
  if (pending(t) == 0 && t->fd >= 0) ::shutdown(t->fd, SHUT_WR);
  Py_RETURN_NONE;
}

PyObject* tr_can_write_eof(PyObject* self, PyObject*) { return PyBool_FromLong(as_tr(self)->tls == nullptr); }

}  // namespace eddypy::stream
