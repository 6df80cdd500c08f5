// eddyloop._core: the C++ half of eddyloop (see eddyloop/__init__.py).
#include "module.hpp"
#include "transport.hpp"
#include "tls_transport.hpp"

namespace eddypy {
PyObject* watch(PyObject*, PyObject* const* args, Py_ssize_t nargs);
PyObject* wait_fd(PyObject*, PyObject* const* args, Py_ssize_t nargs);
PyObject* info(PyObject*, PyObject*);  // operability.cpp
}

namespace {

PyMethodDef module_methods[] = {
    {"make_stream_transport", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(eddypy::make_stream_transport)),
     METH_FASTCALL, "make_stream_transport(core, sock, protocol, waiter, extra, server[, tls, server_hostname]) -> transport"},
    {"transport_of_fd", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(eddypy::transport_of_fd)),
     METH_FASTCALL, "transport_of_fd(core, fd) -> the stream transport using fd, or None"},
    {"serve", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(eddypy::serve)), METH_FASTCALL,
     "serve(core, listen_fd, protocol_factory, server, backlog[, tls]) -> Serving (owns listen_fd)"},
    {"watch", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(eddypy::watch)), METH_FASTCALL,
     "watch(core, fd, writable, handle[, borrow_core]) -> Watcher"},
    {"wait_fd", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(eddypy::wait_fd)), METH_FASTCALL,
     "wait_fd(core, fd, writable, fut) -> Watcher: fut's result is set once fd is ready"},
    {"info", eddypy::info, METH_NOARGS, "info() -> dict: the backend a loop gets here and why; kernel features"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "eddyloop._core", "asyncio event loop core on eddy", -1, module_methods,
    nullptr, nullptr, nullptr, nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit__core() {
  PyObject* m = PyModule_Create(&module_def);
  if (m == nullptr) return nullptr;
  if (PyType_Ready(&eddypy::core_type) < 0 || !eddypy::init_handles(m) || !eddypy::init_transports(m) ||
      !eddypy::stream::init_tls(m)) {
    Py_DECREF(m);
    return nullptr;
  }
  Py_INCREF(&eddypy::core_type);
  if (PyModule_AddObject(m, "Core", reinterpret_cast<PyObject*>(&eddypy::core_type)) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
