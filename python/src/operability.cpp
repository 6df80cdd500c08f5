// What eddyloop tells its operators: loop.metrics() (eddy's loop_metrics as a
// dict) and slow-callback naming (eddyloop.install(slow_callback_ms=...)).
//
// Slow callbacks are named as asyncio's debug mode names them ("Executing <Task
// ...> took 0.120 seconds", logged on asyncio's logger), but without debug mode's
// other costs (coroutine origin tracking, a traceback per handle): only two clock
// reads per callback while it is on, and nothing while it is off.
#include <time.h>

#include <cmath>
#include <exception>
#include <string>

#include <eddy/io/kernel_features.hpp>
#include <eddy/runtime/loop.hpp>

#include "handle.hpp"
#include "module.hpp"

namespace eddypy {

long long monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1'000'000'000LL + ts.tv_nsec;
}

void check_slow(handle_object* h, long long ns) {
  core_object* core = h->core;
  if (ns < core->slow_ns || core->pyloop == nullptr || h->callback == nullptr) return;
  // The callback may have failed: keep its error for report_error after us.
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyObject* r = PyObject_CallMethod(core->pyloop, "_eddy_slow_callback", "Od", h->callback,
                                    static_cast<double>(ns) / 1e9);
  if (r == nullptr) PyErr_WriteUnraisable(core->pyloop);
  Py_XDECREF(r);
  PyErr_Restore(type, value, tb);
}

PyObject* core_set_slow_callback(PyObject* self, PyObject* arg) {
  auto* core = reinterpret_cast<core_object*>(self);
  const double s = PyFloat_AsDouble(arg);
  if (s == -1.0 && PyErr_Occurred()) return nullptr;
  if (!std::isfinite(s) || s < 0 || s > 3600) {
    PyErr_Format(PyExc_ValueError, "slow callback threshold must be 0..3600 seconds, got %R", arg);
    return nullptr;
  }
  core->slow_ns = static_cast<long long>(s * 1e9);
  Py_RETURN_NONE;
}

PyObject* core_metrics(PyObject* self, PyObject*) {
  auto* core = reinterpret_cast<core_object*>(self);
  if (!check_open(core)) return nullptr;
  const eddy::loop_metrics m = core->loop->metrics();
  // {kind: n} for the kinds with a non-zero count, by op_kind_name.
  auto by_kind = [](const auto& counts) -> PyObject* {
    PyObject* d = PyDict_New();
    if (d == nullptr) return nullptr;
    for (std::size_t i = 0; i < eddy::loop_metrics::op_kinds; ++i) {
      if (counts[i] == 0) continue;
      PyObject* v = PyLong_FromUnsignedLongLong(static_cast<unsigned long long>(counts[i]));
      if (v == nullptr || PyDict_SetItemString(d, eddy::loop_metrics::op_kind_name(i), v) < 0) {
        Py_XDECREF(v);
        Py_DECREF(d);
        return nullptr;
      }
      Py_DECREF(v);
    }
    return d;
  };
  PyObject* ops = by_kind(m.ops_submitted);
  if (ops == nullptr) return nullptr;
  PyObject* in_flight = by_kind(m.in_flight);
  if (in_flight == nullptr) {
    Py_DECREF(ops);
    return nullptr;
  }
  auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  return Py_BuildValue(
      "{s:d,s:d,s:d,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:n,s:n,s:n,s:n,s:N,s:N}", "busy_time",
      static_cast<double>(m.busy_ns) / 1e9, "idle_time", static_cast<double>(m.idle_ns) / 1e9, "utilization",
      m.utilization(), "iterations", u(m.iterations), "blocking_waits", u(m.blocking_waits), "callbacks",
      u(m.callbacks), "task_polls", u(m.task_polls), "io_completions", u(m.io_completions), "remote_posts",
      u(m.remote_posts), "wakeups", u(m.wakeups), "tasks_spawned", u(m.tasks_spawned), "stalls", u(m.stalls),
      "live_tasks", static_cast<Py_ssize_t>(m.live_tasks), "ready_depth", static_cast<Py_ssize_t>(m.ready_depth),
      "in_flight_io", static_cast<Py_ssize_t>(m.in_flight_io), "armed_timers",
      static_cast<Py_ssize_t>(m.armed_timers), "ops_submitted", ops, "in_flight", in_flight);
}

}  // namespace eddypy

namespace eddypy {

// _core.info(): what `python -m eddyloop` prints: the backend a loop would get
// here and why, every backend's availability, and the kernel's features.
PyObject* info(PyObject*, PyObject*) {
  try {
    const eddy::kernel_features f = eddy::probe_kernel_features();
    std::string chosen = "none", reason;
    try {
      eddy::loop l;
      chosen = std::string(l.backend_name());
      reason = l.backend_reason();
      l.close();
    } catch (const std::exception& e) {
      reason = e.what();
    }
    PyObject* backends = PyDict_New();
    if (backends == nullptr) return nullptr;
    for (eddy::backend_kind k : eddy::backend_kinds()) {
      std::string why;
      const bool ok = eddy::backend_available(k, &why);
      PyObject* v = ok ? Py_BuildValue("s", "usable") : Py_BuildValue("s", ("not usable: " + why).c_str());
      if (v == nullptr || PyDict_SetItemString(backends, std::string(eddy::backend_name(k)).c_str(), v) < 0) {
        Py_XDECREF(v);
        Py_DECREF(backends);
        return nullptr;
      }
      Py_DECREF(v);
    }
    auto b = [](bool x) { return x ? Py_NewRef(Py_True) : Py_NewRef(Py_False); };
    return Py_BuildValue(
        "{s:s,s:s,s:N,s:s,s:{s:N,s:s,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:s,s:N,s:s,s:s}}", "backend", chosen.c_str(),
        "reason", reason.c_str(), "backends", backends, "kernel", f.kernel_release.c_str(), "features",
        "io_uring", b(f.io_uring), "io_uring_why", f.io_uring_why.c_str(), "single_issuer",
        b(f.uring_single_issuer), "defer_taskrun", b(f.uring_defer_taskrun), "multishot_accept",
        b(f.uring_multishot_accept), "multishot_recv", b(f.uring_multishot_recv), "buffer_ring",
        b(f.uring_buffer_ring), "cancel_by_fd", b(f.uring_cancel_by_fd), "epoll", b(f.epoll), "epoll_pwait2",
        b(f.epoll_pwait2), "epoll_why", f.epoll_why.c_str(), "libuv", b(f.libuv), "libuv_why", f.libuv_why.c_str(), "libuv_version",
        f.libuv_version.c_str());
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    return nullptr;
  }
}

}  // namespace eddypy
