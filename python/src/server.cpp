// The accept loop behind asyncio.Server on eddyloop: _core.serve() owns a
// listening fd and makes a stream transport (transport.cpp) for each connection.
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

namespace eddypy {

using namespace stream;

namespace {

eddy::task<void> accept_loop(core_object* core, int lfd, PyObject* factory, PyObject* server, int backlog,
                             PyObject* tls) {
  // core, factory, server and tls (a TLSConfig or None): strong references
  // released at the end; lfd owned.
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
        PyObject* tr = new_transport(core, fd, nullptr, protocol, nullptr, nullptr, server, tls);
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
  Py_DECREF(tls);
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

}  // namespace

PyTypeObject serving_type = [] {
  PyTypeObject t = new_type("eddyloop._core.Serving", sizeof(serving_object), Py_TPFLAGS_DEFAULT,
                            serving_dealloc);
  t.tp_methods = serving_methods;
  return t;
}();

PyObject* serve(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if ((nargs != 5 && nargs != 6) || !PyObject_TypeCheck(args[0], &core_type)) {
    PyErr_SetString(PyExc_TypeError, "serve(core, listen_fd, protocol_factory, server, backlog[, tls])");
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
  PyObject* tls = Py_NewRef(nargs == 6 ? args[5] : Py_None);
  try {
    s->task = new eddy::join_handle<void>(core->loop->spawn(accept_loop(
        core, static_cast<int>(lfd), args[2], args[3], backlog > 0 ? static_cast<int>(backlog) : 100, tls)));
  } catch (...) {
    Py_DECREF(args[0]);
    Py_DECREF(args[2]);
    Py_DECREF(args[3]);
    Py_DECREF(tls);
    ::close(static_cast<int>(lfd));
    Py_DECREF(s);
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(s);
}

}  // namespace eddypy
