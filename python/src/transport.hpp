// Stream transports (asyncio.Transport's interface) over eddy sockets, and the
// accept loop behind Server objects.
#pragma once

#include "module.hpp"

namespace eddypy {

// _core.make_stream_transport(core, sock_or_fd, protocol, waiter, extra, server)
PyObject* make_stream_transport(PyObject* module, PyObject* const* args, Py_ssize_t nargs);
// transport_of_fd(core, fd) -> the stream transport whose open fd this is, or None.
PyObject* transport_of_fd(PyObject* module, PyObject* const* args, Py_ssize_t nargs);
// _core.serve(core, listen_fd, protocol_factory, server, backlog) -> serving token
PyObject* serve(PyObject* module, PyObject* const* args, Py_ssize_t nargs);

}  // namespace eddypy
