// The stream transport's read path (step 2 of the protocol in transport.cpp): the
// reader task, delivery to a Protocol or a BufferedProtocol, EOF, and
// pause_reading/resume_reading.
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

bool writable_view(PyObject* buf, Py_buffer* view) {
  const int r = PyObject_GetBuffer(buf, view, PyBUF_WRITABLE);
  if (r < 0) {
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "get_buffer() must return a writable bytes-like object, not '%.100s'",
                 Py_TYPE(buf)->tp_name);
  }
  Py_DECREF(buf);
  return r == 0;
}

bool deliver_span(transport_object* t, const char* p, Py_ssize_t n, Py_ssize_t& off) {
  // Each call takes the protocol's methods afresh: a callback may swap the
  // protocol (set_protocol, start_tls) and the rest of the bytes go to the new one.
  while (off < n && !t->shut_down && t->data_received != nullptr && !t->reading_paused) {
    const ref dr(t->data_received);
    if (t->buffer_updated == nullptr) {
      PyObject* bytes = PyBytes_FromStringAndSize(p + off, n - off);
      if (bytes == nullptr) return false;
      PyObject* r = PyObject_Vectorcall(dr.get(), &bytes, 1, nullptr);
      Py_DECREF(bytes);
      off = n;  // (on error too: asyncio drops the bytes it handed over)
      if (r == nullptr) {
        fatal_error(t, "Fatal error: protocol.data_received() call failed.");
        return false;
      }
      Py_DECREF(r);
      return true;
    }
    // BufferedProtocol: get_buffer(n) may hand back less room than n; loop until taken.
    const ref bu(t->buffer_updated);
    PyObject* hint = PyLong_FromSsize_t(n - off);
    PyObject* buf = hint != nullptr ? PyObject_Vectorcall(dr.get(), &hint, 1, nullptr) : nullptr;
    Py_XDECREF(hint);
    if (buf == nullptr) {
      fatal_error(t, "Fatal error: protocol.get_buffer() call failed.");
      return false;
    }
    const Py_ssize_t len = PyObject_Length(buf);
    if (len <= 0) {
      Py_DECREF(buf);
      if (len == 0) PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
      fatal_error(t, "Fatal error: protocol.get_buffer() call failed.");
      return false;
    }
    Py_buffer view;
    if (!writable_view(buf, &view)) {
      fatal_error(t, "Fatal read error on socket transport");
      return false;
    }
    if (view.len == 0) {
      PyBuffer_Release(&view);
      PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
      fatal_error(t, "Fatal error: protocol.get_buffer() call failed.");
      return false;
    }
    const Py_ssize_t k = view.len < n - off ? view.len : n - off;
    std::memcpy(view.buf, p + off, static_cast<std::size_t>(k));
    PyBuffer_Release(&view);
    off += k;
    PyObject* kk = PyLong_FromSsize_t(k);
    PyObject* r = kk != nullptr ? PyObject_Vectorcall(bu.get(), &kk, 1, nullptr) : nullptr;
    Py_XDECREF(kk);
    if (r == nullptr) {
      fatal_error(t, "Fatal error: protocol.buffer_updated() call failed.");
      return false;
    }
    Py_DECREF(r);
  }
  return true;
}

// Hands `b` to the protocol, consuming what it took. A BufferedProtocol takes it
// in get_buffer-sized steps and may pause_reading() between two: the rest stays
// in `b` until reading resumes, as asyncio makes no read while paused. Stops
// too when start_tls() put TLS under the protocol: the rest is ciphertext.
bool deliver(transport_object* t, eddy::recv_buffer& b) {
  Py_ssize_t off = 0;
  bool ok = true;
  if (t->tls == nullptr)
    ok = deliver_span(t, reinterpret_cast<const char*>(b.data().data()), static_cast<Py_ssize_t>(b.size()), off);
  b.consume(static_cast<std::size_t>(off));
  return ok;
}

// A BufferedProtocol reads straight into its own buffer, as asyncio's selector
// transport does, while receive() has not been used on the socket (once it has,
// its receiver owns the incoming bytes, some perhaps queued, and deliver() copies
// them: a protocol switched from plain to buffered mid-stream).
bool reads_into_protocol(const transport_object* t) {
  return t->tls == nullptr && t->buffer_updated != nullptr && t->data_received != nullptr && !t->stream->receiving();
}

enum class direct_read { filled, short_read, again, eof, failed };

// One read into the protocol's buffer once the socket is readable: get_buffer(-1),
// a non-blocking recv into it, buffer_updated(n). No Python buffer is held past
// this call, so nothing the protocol does to its buffer between reads (resize,
// replace) can meet a read in flight.
direct_read read_into_protocol(transport_object* t) {
  const ref gb(t->data_received);
  const ref bu(t->buffer_updated);
  PyObject* hint = PyLong_FromSsize_t(-1);
  PyObject* buf = hint != nullptr ? PyObject_Vectorcall(gb.get(), &hint, 1, nullptr) : nullptr;
  Py_XDECREF(hint);
  if (buf == nullptr) {
    fatal_error(t, "Fatal error: protocol.get_buffer() call failed.");
    return direct_read::failed;
  }
  // asyncio checks len(buf) first, then recv_into(buf) fails on anything that is
  // not a writable buffer, a read error in its words.
  const Py_ssize_t len = PyObject_Length(buf);
  if (len <= 0) {
    Py_DECREF(buf);
    if (len == 0) PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
    fatal_error(t, "Fatal error: protocol.get_buffer() call failed.");
    return direct_read::failed;
  }
  Py_buffer view;
  if (!writable_view(buf, &view)) {
    fatal_error(t, "Fatal read error on socket transport");
    return direct_read::failed;
  }
  if (view.len == 0) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
    fatal_error(t, "Fatal error: protocol.get_buffer() call failed.");
    return direct_read::failed;
  }
  ssize_t n;
  do {
    n = ::recv(t->fd, view.buf, static_cast<std::size_t>(view.len), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  const int err = errno;
  const Py_ssize_t room = view.len;
  PyBuffer_Release(&view);
  if (n < 0) {
    if (err == EAGAIN || err == EWOULDBLOCK) return direct_read::again;
    set_errno_error(err);
    fatal_error(t, "Fatal read error on socket transport");
    return direct_read::failed;
  }
  if (n == 0) return direct_read::eof;
  PyObject* nn = PyLong_FromSsize_t(n);
  PyObject* r = nn != nullptr ? PyObject_Vectorcall(bu.get(), &nn, 1, nullptr) : nullptr;
  Py_XDECREF(nn);
  if (r == nullptr) {
    fatal_error(t, "Fatal error: protocol.buffer_updated() call failed.");
    return direct_read::failed;
  }
  Py_DECREF(r);
  return n == room ? direct_read::filled : direct_read::short_read;
}

// Returns true if eof_received raised SystemExit or KeyboardInterrupt.
bool on_eof(transport_object* t) {
  if (t->protocol == nullptr) return false;
  const ref protocol(t->protocol);
  PyObject* r = PyObject_CallMethod(protocol.get(), "eof_received", nullptr);
  if (r == nullptr) {
    const bool fatal =
        PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
    fatal_error(t, "Fatal error: protocol.eof_received() call failed.");
    return fatal;
  }
  const int keep_open = PyObject_IsTrue(r);
  Py_DECREF(r);
  if (keep_open <= 0) {
    if (keep_open < 0) PyErr_Clear();
    t->closing = true;
    if (may_end(t)) shutdown(t, nullptr);
  }
  return false;
}

eddy::task<void> read_loop(transport_object* t) {
  // t: a strong reference taken at creation, released at the end.
  bool at_eof = false;
  bool readable = false;  // direct reads: the last read filled the buffer
  try {
    for (;;) {
      if (t->tls != nullptr) {  // set up at creation, or by start_tls() since the last read
        co_await tls_read_loop(t, eddy::recv_buffer(), false);
        break;
      }
      if (t->reading_paused || at_eof) {
        t->resume->clear();
        co_await t->resume->wait();
        if (t->shut_down) break;
        continue;
      }
      if (reads_into_protocol(t)) {
        if (!readable) {
          (void)co_await eddy::poll(t->fd, POLLIN | POLLRDHUP);
          if (t->shut_down || t->core->closed) break;
          readable = true;
          continue;  // pause_reading() or set_protocol() may have come meanwhile
        }
        const direct_read r = read_into_protocol(t);
        readable = r == direct_read::filled;
        if (r == direct_read::eof) {
          // As below: what the last buffer_updated queued runs before eof_received.
          co_await eddy::yield_now();
          if (t->shut_down || t->core->closed) break;
          if (t->reading_paused) {
            readable = true;  // the kernel repeats the EOF once reading resumes
            continue;
          }
          at_eof = true;
          while (on_eof(t)) {
            co_await eddy::yield_now();
            if (t->shut_down || t->core->closed) break;
          }
          continue;
        }
        // One read per loop turn while the socket stays readable, as asyncio's
        // selector makes: a fast sender cannot hold the loop.
        if (readable) co_await eddy::yield_now();
        continue;
      }
      readable = false;
      eddy::recv_buffer b = co_await t->stream->receive();
      if (t->shut_down || t->core->closed) break;
      if (t->tls != nullptr) {
        const bool eof = b.empty();
        co_await tls_read_loop(t, std::move(b), eof);
        break;
      }
      if (b.empty()) {
        // EOF right behind data arrives in the same turn here, where asyncio and
        // uvloop see it a loop iteration later. Let what data_received queued run
        // first: aiohttp starts the request's task there, and a connection_lost
        // (eof_received -> close) before that task's first step fails its assert.
        co_await eddy::yield_now();
        if (t->shut_down || t->core->closed) break;
      }
      // pause_reading() while we waited: hold these bytes until resume_reading().
      while (t->reading_paused && !t->shut_down) {
        t->resume->clear();
        co_await t->resume->wait();
      }
      if (t->shut_down) break;
      if (b.empty()) {
        at_eof = true;
        // asyncio sees EOF as readiness, level-triggered: an eof_received that
        // raised SystemExit/KeyboardInterrupt is called again on the next run.
        while (on_eof(t)) {
          co_await eddy::yield_now();
          if (t->shut_down || t->core->closed) break;
        }
        continue;
      }
      deliver(t, b);
      // Paused in the middle of the buffer: the rest waits for resume_reading().
      // A get_buffer or buffer_updated that raised SystemExit/KeyboardInterrupt
      // left the connection open: the rest goes on at the next run, as asyncio
      // reads again once the socket is still readable.
      while (!b.empty() && !t->shut_down && t->data_received != nullptr && t->tls == nullptr) {
        t->resume->clear();
        if (t->reading_paused)
          co_await t->resume->wait();
        else
          co_await eddy::yield_now();
        if (t->shut_down || t->core->closed) break;
        deliver(t, b);
      }
      if (t->tls != nullptr && !b.empty() && !t->shut_down && !t->core->closed) {
        co_await tls_read_loop(t, std::move(b), false);  // start_tls() mid-buffer: the rest is TLS
        break;
      }
      // A SystemExit/KeyboardInterrupt is on its way out of run_forever: the next
      // bytes (already here, so receive() would not suspend) wait for the next run.
      if (t->core->fatal != nullptr) co_await eddy::yield_now();
    }
  } catch (const eddy::cancelled_error&) {
  } catch (const std::system_error& e) {
    if (!t->shut_down && !t->core->closed) {
      set_errno_error(e.code().value());
      fatal_error(t, "Fatal read error on socket transport");
    }
  }
  // The writer (if any) was cancelled with us or is about to see fd < 0.
  release_fd(t);
  delete t->reader;
  t->reader = nullptr;
  Py_DECREF(as_obj(t));
}

PyObject* tr_is_reading(PyObject* self, PyObject*) {
  transport_object* t = as_tr(self);
  return PyBool_FromLong(!t->reading_paused && !t->closing);
}

PyObject* tr_pause_reading(PyObject* self, PyObject*) {
  transport_object* t = as_tr(self);
  if (!t->closing) t->reading_paused = true;
  Py_RETURN_NONE;
}

PyObject* tr_resume_reading(PyObject* self, PyObject*) {
  transport_object* t = as_tr(self);
  if (t->closing || !t->reading_paused) Py_RETURN_NONE;
  t->reading_paused = false;
  t->resume->set();
  Py_RETURN_NONE;
}

}  // namespace eddypy::stream
