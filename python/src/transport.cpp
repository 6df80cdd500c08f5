// eddyloop's stream transport: asyncio.Transport over an eddy stream socket.
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
//     callback runs once the core is closed.
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

#include "transport.hpp"

namespace eddypy {

namespace {

struct transport_object {
  PyObject_HEAD
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
};

inline transport_object* as_tr(PyObject* o) { return reinterpret_cast<transport_object*>(o); }
inline PyObject* as_obj(transport_object* t) { return reinterpret_cast<PyObject*>(t); }

std::size_t pending(const transport_object* t) { return t->wbuf->size() - t->wpos + t->inflight; }

PyObject* g_transport_socket = nullptr;  // asyncio.trsock.TransportSocket
PyObject* g_socket_type = nullptr;       // socket.socket
PyObject* g_buffered_protocol = nullptr; // asyncio.BufferedProtocol

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
void release_fd(transport_object* t) {
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
  if (t->protocol != nullptr) {
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
  if (t->core->closed) return;
  try {
    t->core->loop->call_soon([r = ref(as_obj(t)), e = ref(exc)] { connection_lost(as_tr(r.get()), e.get()); });
  } catch (...) {
  }
}

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

void finish_writes(transport_object* t) {
  if (pending(t) != 0 || t->shut_down) return;
  if (t->eof_written && t->fd >= 0) ::shutdown(t->fd, SHUT_WR);
  if (t->closing) shutdown(t, nullptr);
}

eddy::task<void> write_loop(transport_object* t) {
  // t: a strong reference taken by start_writer, released at the end.
  try {
    while (pending(t) != 0 && t->fd >= 0 && !t->shut_down) {
      co_await eddy::poll(t->fd, POLLOUT);
      if (t->fd < 0 || t->shut_down) break;
      const ssize_t n = ::send(t->fd, t->wbuf->data() + t->wpos, pending(t), MSG_NOSIGNAL | MSG_DONTWAIT);
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
  const ssize_t n = ::send(t->fd, t->wbuf->data() + t->wpos, pending(t), MSG_NOSIGNAL | MSG_DONTWAIT);
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
  if (pending(t) != 0) {
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
  if (t->shut_down || t->fd < 0 || t->writer != nullptr || pending(t) == 0) return;
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
// read-only or non-buffer object is a TypeError, as socket.recv_into raises.
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

// Hands `b` to the protocol, consuming what it took. A BufferedProtocol takes it
// in get_buffer-sized steps and may pause_reading() between two: the rest stays
// in `b` until reading resumes, as asyncio makes no read while paused.
bool deliver(transport_object* t, eddy::recv_buffer& b) {
  const char* p = reinterpret_cast<const char*>(b.data().data());
  const Py_ssize_t n = static_cast<Py_ssize_t>(b.size());
  // Each call takes the protocol's methods afresh: a callback may swap the
  // protocol (set_protocol, start_tls) and the rest of the bytes go to the new one.
  Py_ssize_t off = 0;
  struct consume_taken {
    eddy::recv_buffer& b;
    Py_ssize_t& off;
    ~consume_taken() { b.consume(static_cast<std::size_t>(off)); }
  } consume{b, off};
  while (off < n && !t->shut_down && t->data_received != nullptr && !t->reading_paused) {
    const ref dr(t->data_received);
    if (t->buffer_updated == nullptr) {
      PyObject* bytes = PyBytes_FromStringAndSize(p + off, n - off);
      if (bytes == nullptr) return false;
      PyObject* r = PyObject_Vectorcall(dr.get(), &bytes, 1, nullptr);
      Py_DECREF(bytes);
      off = n;
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

// A BufferedProtocol reads straight into its own buffer, as asyncio's selector
// transport does, while receive() has not been used on the socket (once it has,
// its receiver owns the incoming bytes, some perhaps queued, and deliver() copies
// them: a protocol switched from plain to buffered mid-stream).
bool reads_into_protocol(const transport_object* t) {
  return t->buffer_updated != nullptr && t->data_received != nullptr && !t->stream->receiving();
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
    if (pending(t) == 0) shutdown(t, nullptr);
  }
  return false;
}

eddy::task<void> read_loop(transport_object* t) {
  // t: a strong reference taken at creation, released at the end.
  bool at_eof = false;
  bool readable = false;  // direct reads: the last read filled the buffer
  try {
    for (;;) {
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
      while (!b.empty() && !t->shut_down && t->data_received != nullptr) {
        t->resume->clear();
        if (t->reading_paused)
          co_await t->resume->wait();
        else
          co_await eddy::yield_now();
        if (t->shut_down || t->core->closed) break;
        deliver(t, b);
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

// ---- Python methods -------------------------------------------------------

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
  if (n == 0 || t->closing || t->fd < 0) {
    if (have_view) PyBuffer_Release(&view);
    Py_RETURN_NONE;
  }
  if (t->core->ring_writes) {
    t->wbuf->append(p, static_cast<std::size_t>(n));
  } else if (!t->core->send_now) {
    return write_per_turn(t, p, n, have_view ? &view : nullptr);
  } else if (pending(t) == 0) {
    const ssize_t w = ::send(t->fd, p, static_cast<std::size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w == n) {
      if (have_view) PyBuffer_Release(&view);
      Py_RETURN_NONE;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      if (have_view) PyBuffer_Release(&view);
      set_errno_error(errno);
      fatal_error(t, "Fatal write error on socket transport");
      Py_RETURN_NONE;
    }
    const std::size_t done = w > 0 ? static_cast<std::size_t>(w) : 0;
    t->wbuf->append(p + done, static_cast<std::size_t>(n) - done);
  } else {
    t->wbuf->append(p, static_cast<std::size_t>(n));
  }
  if (have_view) PyBuffer_Release(&view);
  try {
    start_writer(t);
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return nullptr;
  }
  maybe_pause_protocol(t);
  Py_RETURN_NONE;
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
  if (t->closing || t->eof_written) Py_RETURN_NONE;
  t->eof_written = true;
  if (pending(t) == 0 && t->fd >= 0) ::shutdown(t->fd, SHUT_WR);
  Py_RETURN_NONE;
}

PyObject* tr_can_write_eof(PyObject*, PyObject*) { Py_RETURN_TRUE; }

PyObject* tr_close(PyObject* self, PyObject*) {
  transport_object* t = as_tr(self);
  if (t->closing) Py_RETURN_NONE;
  t->closing = true;
  t->resume->set();
  if (pending(t) == 0) shutdown(t, nullptr);
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
  PyObject* v = PyDict_GetItemWithError(t->extra, name);
  if (v != nullptr) return Py_NewRef(v);
  if (PyErr_Occurred()) return nullptr;
  if (!PyUnicode_Check(name) || t->fd < 0) return Py_NewRef(dflt);
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
  return PyUnicode_FromFormat("<eddyloop.TCPTransport fd=%d%s>", t->fd,
                              t->shut_down ? " closed" : (t->closing ? " closing" : ""));
}

void tr_dealloc(PyObject* self) {
  transport_object* t = as_tr(self);
  PyObject_GC_UnTrack(self);
  if (t->weakrefs != nullptr) PyObject_ClearWeakRefs(self);
  // Tasks hold references, so none is alive here; the fd went with the reader.
  delete t->stream;
  delete t->resume;
  delete t->wbuf;
  Py_CLEAR(t->protocol);
  Py_CLEAR(t->data_received);
  Py_CLEAR(t->buffer_updated);
  Py_CLEAR(t->server);
  Py_CLEAR(t->extra);
  Py_CLEAR(t->sock);
  Py_CLEAR(t->core);
  Py_TYPE(self)->tp_free(self);
}

int tr_traverse(PyObject* self, visitproc visit, void* arg) {
  transport_object* t = as_tr(self);
  Py_VISIT(t->protocol);
  Py_VISIT(t->data_received);
  Py_VISIT(t->buffer_updated);
  Py_VISIT(t->server);
  Py_VISIT(t->extra);
  return 0;
}

int tr_clear(PyObject* self) {
  transport_object* t = as_tr(self);
  Py_CLEAR(t->protocol);
  Py_CLEAR(t->data_received);
  Py_CLEAR(t->buffer_updated);
  Py_CLEAR(t->extra);
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
    {nullptr, nullptr, 0, nullptr},
};

void queue_connection_made(transport_object* t, PyObject* waiter) {
  eddy::loop& l = *t->core->loop;
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

PyGetSetDef tr_getset[] = {
    {"_protocol_paused", tr_protocol_paused, nullptr, "pause_writing() was called (asyncio's sendfile reads it)",
     nullptr},
    {"_start_tls_compatible", tr_start_tls_compatible, nullptr, "loop.start_tls() may upgrade this transport",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

}  // namespace

PyTypeObject transport_type = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "eddyloop._core.TCPTransport";
  t.tp_basicsize = sizeof(transport_object);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  t.tp_dealloc = tr_dealloc;
  t.tp_traverse = tr_traverse;
  t.tp_clear = tr_clear;
  t.tp_repr = tr_repr;
  t.tp_methods = tr_methods;
  t.tp_getset = tr_getset;
  t.tp_weaklistoffset = offsetof(transport_object, weakrefs);
  t.tp_doc = "A stream transport on an eddy socket (asyncio.Transport's interface).";
  return t;
}();

// Builds a transport for `fd` (owned from here on) and queues step 1.
PyObject* new_transport(core_object* core, int fd, PyObject* sock, PyObject* protocol, PyObject* waiter,
                        PyObject* extra, PyObject* server) {
  auto* t = PyObject_GC_New(transport_object, &transport_type);
  if (t == nullptr) {
    ::close(fd);
    return nullptr;
  }
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
    queue_connection_made(t, waiter);
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

PyObject* make_stream_transport(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 6 || !PyObject_TypeCheck(args[0], &core_type)) {
    PyErr_SetString(PyExc_TypeError, "make_stream_transport(core, sock, protocol, waiter, extra, server)");
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
  return new_transport(core, static_cast<int>(fd), args[1], args[2], args[3], args[4], args[5]);
}

// ---- accepting ------------------------------------------------------------

namespace {

eddy::task<void> accept_loop(core_object* core, int lfd, PyObject* factory, PyObject* server, int backlog) {
  // core, factory and server: strong references released at the end; lfd owned.
  try {
    for (;;) {
      co_await eddy::poll(lfd, POLLIN);
      for (int i = 0; i < backlog && !core->closed; ++i) {
        const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          const int err = errno;
          if (err == EAGAIN || err == EINTR || err == ECONNABORTED) break;
          if (err == EINVAL) co_await eddy::event().wait();  // shut down by Serving.cancel(): wait for the cancel
          set_errno_error(err);
          report_error(core, "socket.accept() out of system resource", "socket", Py_None);
          if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
            co_await eddy::sleep_for(std::chrono::seconds(1));  // asyncio's pause before trying again
          break;
        }
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on AF_UNIX
        PyObject* protocol = PyObject_CallNoArgs(factory);
        if (protocol == nullptr) {
          ::close(fd);
          report_error(core, "Error on transport creation for incoming connection");
          continue;
        }
        PyObject* tr = new_transport(core, fd, nullptr, protocol, nullptr, nullptr, server);
        Py_DECREF(protocol);
        if (tr == nullptr) report_error(core, "Error on transport creation for incoming connection");
        Py_XDECREF(tr);
      }
    }
  } catch (const eddy::cancelled_error&) {
  } catch (const std::system_error& e) {
    if (!core->closed) {
      set_errno_error(e.code().value());
      report_error(core, "Accept loop failed");
    }
  }
  eddy::unique_fd(lfd).reset();  // through eddy: epoll's engine forgets the number
  Py_DECREF(factory);
  Py_DECREF(server);
  Py_DECREF(reinterpret_cast<PyObject*>(core));
}

struct serving_object {
  PyObject_HEAD
  eddy::join_handle<void>* task;
  int lfd;
};

PyObject* serving_cancel(PyObject* self, PyObject*) {
  auto* s = reinterpret_cast<serving_object*>(self);
  if (s->task != nullptr) {
    // Stop listening now: the fd itself closes when the task sees the cancel,
    // which on io_uring is an iteration later, and a connect in between would
    // be reset instead of refused.
    ::shutdown(s->lfd, SHUT_RDWR);
    s->task->cancel();
    delete s->task;  // detaches; the task finishes on its own and closes its fd
    s->task = nullptr;
  }
  Py_RETURN_NONE;
}

void serving_dealloc(PyObject* self) {
  auto* s = reinterpret_cast<serving_object*>(self);
  if (s->task != nullptr) {
    s->task->cancel();
    delete s->task;
  }
  Py_TYPE(self)->tp_free(self);
}

PyMethodDef serving_methods[] = {
    {"cancel", serving_cancel, METH_NOARGS, "Stop accepting and close the listening fd."},
    {nullptr, nullptr, 0, nullptr},
};

PyTypeObject serving_type = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "eddyloop._core.Serving";
  t.tp_basicsize = sizeof(serving_object);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_dealloc = serving_dealloc;
  t.tp_methods = serving_methods;
  return t;
}();

}  // namespace

PyObject* serve(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 5 || !PyObject_TypeCheck(args[0], &core_type)) {
    PyErr_SetString(PyExc_TypeError, "serve(core, listen_fd, protocol_factory, server, backlog)");
    return nullptr;
  }
  auto* core = reinterpret_cast<core_object*>(args[0]);
  if (!check_open(core)) return nullptr;
  const long lfd = PyLong_AsLong(args[1]);
  const long backlog = PyLong_AsLong(args[4]);
  if (PyErr_Occurred()) return nullptr;
  auto* s = PyObject_New(serving_object, &serving_type);
  if (s == nullptr) return nullptr;
  s->task = nullptr;
  s->lfd = static_cast<int>(lfd);
  Py_INCREF(args[0]);
  Py_INCREF(args[2]);
  Py_INCREF(args[3]);
  try {
    s->task = new eddy::join_handle<void>(core->loop->spawn(
        accept_loop(core, static_cast<int>(lfd), args[2], args[3], backlog > 0 ? static_cast<int>(backlog) : 100)));
  } catch (...) {
    Py_DECREF(args[0]);
    Py_DECREF(args[2]);
    Py_DECREF(args[3]);
    ::close(static_cast<int>(lfd));
    Py_DECREF(s);
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(s);
}

bool init_transports(PyObject* module) {
  if (PyType_Ready(&transport_type) < 0 || PyType_Ready(&serving_type) < 0) return false;
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
  const int rc = PyDict_SetItemString(transport_type.tp_dict, "_sendfile_compatible", fallback);
  Py_DECREF(fallback);
  if (rc < 0) return false;
  PyType_Modified(&transport_type);
  Py_INCREF(&transport_type);
  return PyModule_AddObject(module, "TCPTransport", reinterpret_cast<PyObject*>(&transport_type)) == 0;
}

}  // namespace eddypy
