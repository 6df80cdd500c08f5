// add_reader / add_writer: a task per watched (fd, direction) that waits for
// readiness through the backend (eddy::poll: io_uring's poll op, or the
// readiness engine) and runs the handle each time, until cancelled. Level
// semantics, as selectors give: the next wait starts only after the callback ran.
//
// The task watches a dup of the fd, closed through eddy (close_fd_now, which
// cancels what is in flight on it and makes the readiness engine forget the
// number) as soon as the watch is removed, or when the task ends. The fd belongs
// to Python, which closes it without telling eddy; epoll's readiness engine keeps
// per-fd-number state, so a number it watched and never saw closed would be taken
// for the same file when reused. The dup goes at remove_reader, not when the
// cancelled task next runs: a program that closes its fd right after, as asyncio's
// pipe transports do, expects the file closed once the loop hands control back (a
// child writing to a pipe whose reader is gone gets EPIPE), and the task's next
// run may be in the loop's next run_until_complete.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <memory>
#include <utility>

#include <eddy/io/fd.hpp>
#include <eddy/runtime/join_handle.hpp>
#include <eddy/runtime/time.hpp>

#include "module.hpp"

namespace eddypy {

namespace {

// Shared by a watcher and its task.
struct watch_state {
  bool removed = false;
  int dup = -1;  // the watched dup (watch() only), until closed
  core_object* core = nullptr;
  void close_dup() noexcept {
    if (dup >= 0) eddy::detail::close_fd_now(core->loop, std::exchange(dup, -1));
  }
};

eddy::task<void> watch_loop(core_object* core, int fd, short events, PyObject* handle,
                            std::shared_ptr<watch_state> st, bool probe_first, bool core_borrowed) {
  // handle (an asyncio.Handle): a strong reference released at the end; core
  // too unless borrowed (the loop's own wakeup socket: its watch must not keep
  // an unclosed loop alive, and the core's close() ends it before the core goes).
  try {
    while (!core->closed && !st->removed) {
      // A new watch on a dup asks the kernel first: data already waiting raises
      // no new edge, and a readiness backend that finds the (file, number) pair
      // still registered from an earlier watch (Python's fd keeps the file open)
      // reports nothing for it. One poll(2) per add_reader/add_writer.
      pollfd now{fd, events, 0};
      if (!probe_first || ::poll(&now, 1, 0) <= 0) co_await eddy::poll(fd, events);
      probe_first = false;
      // remove_reader() asks for a cancel, but the poll may have completed in the
      // kernel first (io_uring delivers that completion, not the cancel): a
      // removed watch must never run its callback again (asyncio's promise).
      if (core->closed || st->removed) break;
      PyObject* r = PyObject_CallMethod(handle, "_run", nullptr);  // reports its own errors
      if (r == nullptr) report_error(core, "Exception in fd callback", "handle", handle);
      Py_XDECREF(r);
      // A poll that finds the fd ready completes without suspending (epoll's
      // engine probes first): give the rest of the loop its turn, as a selector
      // loop runs each ready callback once per iteration.
      co_await eddy::yield_now();
    }
  } catch (const eddy::cancelled_error&) {
  } catch (const std::system_error& e) {
    // After remove_reader() the fd may be closed before the cancel lands (an op
    // still queued for submission then fails with EBADF): not an error.
    if (!core->closed && !st->removed) {
      errno = e.code().value();
      PyErr_SetFromErrno(PyExc_OSError);
      report_error(core, "Error while waiting for fd readiness", "handle", handle);
    }
  }
  st->close_dup();
  Py_DECREF(handle);
  if (!core_borrowed) Py_DECREF(reinterpret_cast<PyObject*>(core));
}

struct watcher_object {
  PyObject_HEAD
  eddy::join_handle<void>* task;
  std::shared_ptr<watch_state>* state;
  PyObject* handle;  // add_reader/add_writer's asyncio.Handle (strong), or null
};

PyObject* watcher_cancel(PyObject* self, PyObject*) {
  auto* w = reinterpret_cast<watcher_object*>(self);
  if (w->task != nullptr) {
    (*w->state)->removed = true;
    w->task->cancel();
    if (!(*w->state)->core->closed) (*w->state)->close_dup();
    delete w->task;
    w->task = nullptr;
  }
  // asyncio's remove_reader/remove_writer cancel the handle: handle.cancelled()
  // says so, and its callback and arguments can be freed.
  if (w->handle != nullptr) {
    PyObject* h = w->handle;
    w->handle = nullptr;
    PyObject* r = PyObject_CallMethod(h, "cancel", nullptr);
    Py_DECREF(h);
    if (r == nullptr) return nullptr;
    Py_DECREF(r);
  }
  Py_RETURN_NONE;
}

void watcher_dealloc(PyObject* self) {
  auto* w = reinterpret_cast<watcher_object*>(self);
  if (w->task != nullptr) {
    (*w->state)->removed = true;
    w->task->cancel();  // the task closes the dup when it ends (the loop may be closing)
    delete w->task;
  }
  Py_CLEAR(w->handle);
  delete w->state;
  Py_TYPE(self)->tp_free(self);
}

PyObject* watcher_on_done(PyObject* self, PyObject*) { return watcher_cancel(self, nullptr); }

PyMethodDef watcher_methods[] = {
    {"cancel", watcher_cancel, METH_NOARGS, "Stop watching."},
    {"_on_done", watcher_on_done, METH_O, "cancel(), as a future's done callback."},
    {nullptr, nullptr, 0, nullptr},
};

PyTypeObject watcher_type = [] {
  PyTypeObject t = new_type("eddyloop._core.Watcher", sizeof(watcher_object), Py_TPFLAGS_DEFAULT,
                            watcher_dealloc);
  t.tp_methods = watcher_methods;
  return t;
}();

// One wait for the sock_* coroutines: resolves `fut` once fd is ready, or ends
// quietly when fut is done first (the sock_* call was cancelled). Python's own
// fd, polled as an fd eddy does not own (eddy::poll_unowned): each wait asks the
// kernel afresh (epoll: one EPOLL_CTL_MOD), so a socket Python closed and whose
// number came back for another is never mistaken for the old one, and no dup
// is made and closed per wait (io_uring's poll holds the file anyway).
eddy::task<void> wait_once(core_object* core, int fd, short events, PyObject* fut) {
  // core, fut: strong references released at the end.
  try {
    co_await eddy::poll_unowned(fd, events);
    if (!core->closed) {
      PyObject* done = PyObject_CallMethod(fut, "done", nullptr);
      const int is_done = done != nullptr ? PyObject_IsTrue(done) : -1;
      Py_XDECREF(done);
      PyObject* r = is_done == 0 ? PyObject_CallMethod(fut, "set_result", "O", Py_None) : nullptr;
      if (r == nullptr && PyErr_Occurred()) report_error(core, "Exception in sock_* wait");
      Py_XDECREF(r);
    }
  } catch (const eddy::cancelled_error&) {
  } catch (const std::system_error& e) {
    if (!core->closed) {
      errno = e.code().value();
      PyObject* exc = PyErr_SetFromErrno(PyExc_OSError);
      (void)exc;
      PyObject *type, *value, *tb;
      PyErr_Fetch(&type, &value, &tb);
      PyErr_NormalizeException(&type, &value, &tb);
      PyObject* done = PyObject_CallMethod(fut, "done", nullptr);
      const int is_done = done != nullptr ? PyObject_IsTrue(done) : 1;
      Py_XDECREF(done);
      PyObject* r = is_done == 0 ? PyObject_CallMethod(fut, "set_exception", "O", value) : nullptr;
      if (r == nullptr) PyErr_Clear();
      Py_XDECREF(r);
      Py_XDECREF(type);
      Py_XDECREF(value);
      Py_XDECREF(tb);
    }
  }
  Py_DECREF(fut);
  Py_DECREF(reinterpret_cast<PyObject*>(core));
}

}  // namespace

// _core.wait_fd(core, fd, writable, fut) -> Watcher (cancel() it when fut is cancelled)
PyObject* wait_fd(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 4 || !PyObject_TypeCheck(args[0], &core_type)) {
    PyErr_SetString(PyExc_TypeError, "wait_fd(core, fd, writable, fut)");
    return nullptr;
  }
  auto* core = reinterpret_cast<core_object*>(args[0]);
  if (!check_open(core)) return nullptr;
  const long fd = PyLong_AsLong(args[1]);
  if (fd == -1 && PyErr_Occurred()) return nullptr;
  if (fd < 0) {
    PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
    return nullptr;
  }
  const int writable = PyObject_IsTrue(args[2]);
  if (writable < 0) return nullptr;
  if (PyType_Ready(&watcher_type) < 0) return nullptr;
  auto* w = PyObject_New(watcher_object, &watcher_type);
  if (w == nullptr) return nullptr;
  w->task = nullptr;
  w->handle = nullptr;
  w->state = new std::shared_ptr<watch_state>(std::make_shared<watch_state>());
  (*w->state)->core = core;
  Py_INCREF(args[3]);
  Py_INCREF(args[0]);
  try {
    w->task = new eddy::join_handle<void>(
        core->loop->spawn(wait_once(core, static_cast<int>(fd), writable ? POLLOUT : POLLIN, args[3])));
  } catch (...) {
    Py_DECREF(args[3]);
    Py_DECREF(args[0]);
    Py_DECREF(w);
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(w);
}

// _core.watch(core, fd, writable, handle[, borrow_core]) -> Watcher
PyObject* watch(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if ((nargs != 4 && nargs != 5) || !PyObject_TypeCheck(args[0], &core_type)) {
    PyErr_SetString(PyExc_TypeError, "watch(core, fd, writable, handle[, borrow_core])");
    return nullptr;
  }
  const int borrow = nargs == 5 ? PyObject_IsTrue(args[4]) : 0;
  if (borrow < 0) return nullptr;
  auto* core = reinterpret_cast<core_object*>(args[0]);
  if (!check_open(core)) return nullptr;
  const long fd = PyLong_AsLong(args[1]);
  if (fd == -1 && PyErr_Occurred()) return nullptr;
  const int writable = PyObject_IsTrue(args[2]);
  if (writable < 0) return nullptr;
  if (PyType_Ready(&watcher_type) < 0) return nullptr;
  const int wfd = ::fcntl(static_cast<int>(fd), F_DUPFD_CLOEXEC, 0);
  if (wfd < 0) return PyErr_SetFromErrno(PyExc_OSError);
  auto* w = PyObject_New(watcher_object, &watcher_type);
  if (w == nullptr) {
    ::close(wfd);
    return nullptr;
  }
  w->task = nullptr;
  w->handle = nullptr;
  w->state = new std::shared_ptr<watch_state>(std::make_shared<watch_state>());
  (*w->state)->core = core;
  Py_INCREF(args[3]);
  if (!borrow) Py_INCREF(args[0]);
  try {
    w->task = new eddy::join_handle<void>(core->loop->spawn(
        watch_loop(core, wfd, writable ? POLLOUT : POLLIN, args[3], *w->state,
                   !core->loop->io_caps().poll_holds_file, borrow != 0)));
    (*w->state)->dup = wfd;  // the task, made: from here on it or remove_reader closes it
    w->handle = Py_NewRef(args[3]);
  } catch (...) {
    Py_DECREF(args[3]);
    if (!borrow) Py_DECREF(args[0]);
    ::close(wfd);
    Py_DECREF(w);
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(w);
}

}  // namespace eddypy
