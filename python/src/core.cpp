// eddyloop._core.Core: one eddy::loop driven from Python.
//
// The Python loop class (eddyloop/loop.py) keeps asyncio's bookkeeping (running
// loop, async generators, executors, exception handler) and hands scheduling and
// running to this object:
//  - call_soon / call_soon_threadsafe / call_later / call_at put a Handle on
//    eddy's ready queue, cross-thread queue (coalesced wakeup) or timer wheel;
//  - run_forever runs eddy's loop until stop(); stop() before run_forever makes
//    the next run_forever run exactly one iteration (asyncio's rule);
//  - the GIL is held all the time except inside the kernel wait (block hooks),
//    where pending signals are checked on the way out, so Ctrl-C interrupts a
//    sleeping loop.
#include <cmath>
#include <cstdlib>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include <eddy/io/backend_kind.hpp>
#include <eddy/runtime/errors.hpp>

#include "handle.hpp"
#include "module.hpp"

namespace eddypy {

PyObject* core_metrics(PyObject* self, PyObject*);  // operability.cpp
PyObject* core_set_slow_callback(PyObject* self, PyObject* arg);

module_state g;

PyObject* call_in_context(PyObject* context, PyObject* callback, PyObject* const* args,
                          Py_ssize_t nargs) {
  if (context == nullptr) return PyObject_Vectorcall(callback, args, nargs, nullptr);
  if (PyContext_Enter(context) < 0) return nullptr;
  PyObject* r = PyObject_Vectorcall(callback, args, nargs, nullptr);
  if (PyContext_Exit(context) < 0) {
    Py_XDECREF(r);
    return nullptr;
  }
  return r;
}

bool check_open(core_object* core) {
  if (core->closed) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return false;
  }
  return true;
}

static bool is_fatal_pending() {
  return PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}

static PyObject* fetch_exception() {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != nullptr && value != nullptr) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value;
}

static void keep_fatal(core_object* core) {
  PyObject* exc = fetch_exception();
  if (core->fatal == nullptr) core->fatal = exc;
  else Py_XDECREF(exc);
  // asyncio's run_forever unwinds from the callback that raised: nothing queued
  // behind it runs before the exception reaches the caller.
  if (core->loop != nullptr && core->loop->is_running()) core->loop->stop_now();
}

void report_error(core_object* core, const char* message, const char* key1, PyObject* obj1,
                  const char* key2, PyObject* obj2) {
  if (is_fatal_pending()) {
    keep_fatal(core);
    return;
  }
  PyObject* exc = fetch_exception();
  if (core->pyloop == nullptr) {
    PyErr_Restore(Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(exc))), exc, nullptr);
    PyErr_WriteUnraisable(nullptr);
    return;
  }
  PyObject* ctx = PyDict_New();
  PyObject* msg = PyUnicode_FromString(message);
  bool ok = ctx != nullptr && msg != nullptr && PyDict_SetItemString(ctx, "message", msg) == 0 &&
            PyDict_SetItemString(ctx, "exception", exc != nullptr ? exc : Py_None) == 0 &&
            (key1 == nullptr || PyDict_SetItemString(ctx, key1, obj1) == 0) &&
            (key2 == nullptr || PyDict_SetItemString(ctx, key2, obj2) == 0);
  Py_XDECREF(msg);
  Py_XDECREF(exc);
  PyObject* r = nullptr;
  if (ok) r = PyObject_CallMethod(core->pyloop, "call_exception_handler", "O", ctx);
  Py_XDECREF(ctx);
  if (r != nullptr) {
    Py_DECREF(r);
    return;
  }
  if (is_fatal_pending()) keep_fatal(core);
  else PyErr_WriteUnraisable(core->pyloop);
}

namespace {

// Turns the C++ exception being handled into a Python one.
void set_from_cpp() {
  try {
    throw;
  } catch (const eddy::loop_closed_error&) {
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
  } catch (const std::system_error& e) {
    errno = e.code().value();
    PyErr_SetFromErrno(PyExc_OSError);
  } catch (const std::invalid_argument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "eddyloop: unknown C++ exception");
  }
}

void before_block(void* a) {
  auto* core = static_cast<core_object*>(a);
  core->saved = PyEval_SaveThread();
}

void after_block(void* a) {
  auto* core = static_cast<core_object*>(a);
  PyEval_RestoreThread(core->saved);
  core->saved = nullptr;
  if (PyErr_CheckSignals() < 0) report_error(core, "Exception in signal handler");
}

// Splits FASTCALL keywords: only `context` is accepted.
bool take_context(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, PyObject** context,
                  const char* method) {
  *context = nullptr;
  if (kwnames == nullptr) return true;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); ++i) {
    PyObject* k = PyTuple_GET_ITEM(kwnames, i);
    if (PyUnicode_CompareWithASCIIString(k, "context") != 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", method, k);
      return false;
    }
    *context = args[nargs + i];
  }
  return true;
}

PyObject* core_new(PyTypeObject* type, PyObject* args, PyObject* kwds) {
  static const char* kwlist[] = {"pyloop", "backend", nullptr};
  PyObject* pyloop = nullptr;
  const char* backend = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|z", const_cast<char**>(kwlist), &pyloop, &backend))
    return nullptr;
  eddy::loop_options opts;
  if (backend != nullptr) {
    auto k = eddy::parse_backend(backend);
    if (!k) {
      PyErr_Format(PyExc_ValueError, "unknown eddy backend %R (expected one of: %s)",
                   PyTuple_GET_ITEM(args, 1), eddy::backend_names().c_str());
      return nullptr;
    }
    opts.backend = *k;
  }
  auto* core = reinterpret_cast<core_object*>(type->tp_alloc(type, 0));
  if (core == nullptr) return nullptr;
  try {
    core->loop = new eddy::loop(opts);
  } catch (...) {
    set_from_cpp();
    Py_DECREF(core);
    return nullptr;
  }
  core->pyloop = Py_NewRef(pyloop);
  core->transports = new std::unordered_map<int, PyObject*>();
  core->send_now = std::getenv("EDDYLOOP_SEND_NOW") != nullptr;
  core->ring_writes = core->loop->io_caps().batched_submission && !core->send_now;
  core->loop->set_block_hooks(&before_block, &after_block, core);
  core->loop->set_exception_handler([core](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (...) {
      set_from_cpp();
    }
    report_error(core, "Unhandled exception in eddy's loop");
  });
  return reinterpret_cast<PyObject*>(core);
}

void close_core(core_object* core) {
  if (core->closed) return;
  core->closed = true;
  cancel_pending_timers(core);
  if (core->loop != nullptr) {
    try {
      core->loop->close();
    } catch (...) {
      set_from_cpp();
      PyErr_WriteUnraisable(nullptr);
    }
    delete core->loop;
    core->loop = nullptr;
  }
  Py_CLEAR(core->pyloop);
}

void core_dealloc(PyObject* self) {
  auto* core = reinterpret_cast<core_object*>(self);
  PyObject_GC_UnTrack(self);
  close_core(core);
  Py_CLEAR(core->fatal);
  delete core->transports;
  Py_TYPE(self)->tp_free(self);
}

int core_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(reinterpret_cast<core_object*>(self)->pyloop);
  return 0;
}

int core_clear(PyObject* self) {
  Py_CLEAR(reinterpret_cast<core_object*>(self)->pyloop);
  return 0;
}

template <class F>
auto schedule_soon(core_object* core, handle_object* h, F&& post) -> PyObject* {
  try {
    post(ref(reinterpret_cast<PyObject*>(h)));
  } catch (...) {
    Py_DECREF(h);
    set_from_cpp();
    return nullptr;
  }
  (void)core;
  return reinterpret_cast<PyObject*>(h);
}

PyObject* core_call_soon(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* core = reinterpret_cast<core_object*>(self);
  PyObject* context;
  if (!take_context(args, nargs, kw, &context, "call_soon")) return nullptr;
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "call_soon() missing 1 required positional argument: 'callback'");
    return nullptr;
  }
  if (!check_open(core)) return nullptr;
  handle_object* h = new_handle(core, args, nargs, context, false, "call_soon");
  if (h == nullptr) return nullptr;
  return schedule_soon(core, h, [core](ref r) {
    core->loop->call_soon([r = std::move(r)] { run_handle(reinterpret_cast<handle_object*>(r.get())); });
  });
}

PyObject* core_call_soon_threadsafe(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                                    PyObject* kw) {
  auto* core = reinterpret_cast<core_object*>(self);
  PyObject* context;
  if (!take_context(args, nargs, kw, &context, "call_soon_threadsafe")) return nullptr;
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError,
                    "call_soon_threadsafe() missing 1 required positional argument: 'callback'");
    return nullptr;
  }
  if (!check_open(core)) return nullptr;
  handle_object* h = new_handle(core, args, nargs, context, false, "call_soon_threadsafe");
  if (h == nullptr) return nullptr;
  // The callback runs at the start of an iteration on the loop thread, GIL held;
  // if the loop closes first it is destroyed by close(), also under the GIL.
  bool posted = core->loop->call_soon_threadsafe(
      [r = ref(reinterpret_cast<PyObject*>(h))] { run_handle(reinterpret_cast<handle_object*>(r.get())); });
  if (!posted) {
    Py_DECREF(h);
    PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(h);
}

double monotonic() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

PyObject* arm_timer(core_object* core, double when, PyObject* const* args, Py_ssize_t nargs,
                    PyObject* context, const char* method) {
  if (!check_open(core)) return nullptr;
  handle_object* h = new_handle(core, args, nargs, context, true, method);
  if (h == nullptr) return nullptr;
  h->when = when;
  try {
    // CLOCK_MONOTONIC is steady_clock's clock on Linux, and time.monotonic()'s.
    const auto at = eddy::clock::time_point(
        std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(when * 1e9))));
    h->timer = new eddy::timer_handle(core->loop->call_at(
        at, [r = ref(reinterpret_cast<PyObject*>(h))] { run_handle(reinterpret_cast<handle_object*>(r.get())); }));
  } catch (...) {
    PyObject_CallMethod(reinterpret_cast<PyObject*>(h), "cancel", nullptr);
    Py_DECREF(h);
    set_from_cpp();
    return nullptr;
  }
  return reinterpret_cast<PyObject*>(h);
}

bool parse_time(PyObject* o, double* out, const char* what) {
  double v = PyFloat_AsDouble(o);
  if (v == -1.0 && PyErr_Occurred()) return false;
  if (std::isnan(v)) {
    PyErr_Format(PyExc_ValueError, "%s must not be NaN", what);
    return false;
  }
  *out = v;
  return true;
}

PyObject* core_call_later(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* core = reinterpret_cast<core_object*>(self);
  PyObject* context;
  if (!take_context(args, nargs, kw, &context, "call_later")) return nullptr;
  if (nargs < 2) {
    PyErr_SetString(PyExc_TypeError, "call_later() takes at least 2 positional arguments (delay, callback)");
    return nullptr;
  }
  double delay;
  if (!parse_time(args[0], &delay, "delay")) return nullptr;
  if (delay > 1e9) delay = 1e9;  // ~31 years: further than any loop runs
  return arm_timer(core, monotonic() + delay, args + 1, nargs - 1, context, "call_later");
}

PyObject* core_call_at(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* core = reinterpret_cast<core_object*>(self);
  PyObject* context;
  if (!take_context(args, nargs, kw, &context, "call_at")) return nullptr;
  if (nargs < 2) {
    PyErr_SetString(PyExc_TypeError, "call_at() takes at least 2 positional arguments (when, callback)");
    return nullptr;
  }
  double when;
  if (!parse_time(args[0], &when, "when")) return nullptr;
  const double cap = monotonic() + 1e9;
  if (when > cap) when = cap;
  return arm_timer(core, when, args + 1, nargs - 1, context, "call_at");
}

PyObject* core_time(PyObject*, PyObject*) { return PyFloat_FromDouble(monotonic()); }

PyObject* core_run_forever(PyObject* self, PyObject*) {
  auto* core = reinterpret_cast<core_object*>(self);
  if (!check_open(core)) return nullptr;
  Py_INCREF(self);
  try {
    if (core->stop_pending) {
      core->stop_pending = false;
      core->loop->run_once(false);
    } else {
      core->loop->run_forever();
    }
  } catch (...) {
    set_from_cpp();
    Py_DECREF(self);
    return nullptr;
  }
  PyObject* fatal = core->fatal;
  core->fatal = nullptr;
  Py_DECREF(self);
  if (fatal != nullptr) {
    PyErr_Restore(Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(fatal))), fatal, nullptr);
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* core_stop(PyObject* self, PyObject*) {
  auto* core = reinterpret_cast<core_object*>(self);
  if (core->loop != nullptr) {
    if (core->loop->is_running()) core->loop->stop();
    else core->stop_pending = true;
  }
  Py_RETURN_NONE;
}

PyObject* core_close(PyObject* self, PyObject*) {
  auto* core = reinterpret_cast<core_object*>(self);
  if (core->loop != nullptr && core->loop->is_running()) {
    PyErr_SetString(PyExc_RuntimeError, "Cannot close a running event loop");
    return nullptr;
  }
  close_core(core);
  if (PyErr_Occurred()) return nullptr;
  Py_RETURN_NONE;
}

PyObject* core_backend(PyObject* self, void*) {
  auto* core = reinterpret_cast<core_object*>(self);
  if (core->loop == nullptr) Py_RETURN_NONE;
  auto n = core->loop->backend_name();
  return PyUnicode_FromStringAndSize(n.data(), static_cast<Py_ssize_t>(n.size()));
}

PyObject* core_stats(PyObject* self, PyObject*) {
  auto* core = reinterpret_cast<core_object*>(self);
  if (!check_open(core)) return nullptr;
  const eddy::loop_stats s = core->loop->stats();
  return Py_BuildValue("{s:n,s:n,s:n,s:n}", "live_tasks", (Py_ssize_t)s.live_tasks, "in_flight_io",
                       (Py_ssize_t)s.in_flight_io, "armed_timers", (Py_ssize_t)s.armed_timers, "ready",
                       (Py_ssize_t)s.ready);
}

PyMethodDef core_methods[] = {
    {"call_soon", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(core_call_soon)),
     METH_FASTCALL | METH_KEYWORDS, "call_soon(callback, *args, context=None) -> Handle"},
    {"call_soon_threadsafe",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(core_call_soon_threadsafe)),
     METH_FASTCALL | METH_KEYWORDS, "call_soon from any thread; wakes the loop if it sleeps."},
    {"call_later", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(core_call_later)),
     METH_FASTCALL | METH_KEYWORDS, "call_later(delay, callback, *args, context=None) -> TimerHandle"},
    {"call_at", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(core_call_at)),
     METH_FASTCALL | METH_KEYWORDS, "call_at(when, callback, *args, context=None) -> TimerHandle"},
    {"time", core_time, METH_NOARGS, "The loop clock (time.monotonic())."},
    {"run_forever", core_run_forever, METH_NOARGS, "Run until stop()."},
    {"stop", core_stop, METH_NOARGS, "Stop after the current iteration."},
    {"close", core_close, METH_NOARGS, "Cancel everything pending and release the loop."},
    {"stats", core_stats, METH_NOARGS, "eddy's loop counters (leak checks)."},
    {"metrics", core_metrics, METH_NOARGS, "eddy's loop metrics (loop_metrics) as a dict."},
    {"set_slow_callback", core_set_slow_callback, METH_O,
     "set_slow_callback(seconds): name callbacks slower than this; 0 turns it off."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef core_getset[] = {
    {"backend", core_backend, nullptr, "The eddy backend this loop runs on.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

}  // namespace

PyTypeObject core_type = [] {
  PyTypeObject t = new_type("eddyloop._core.Core", sizeof(core_object),
                            Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, core_dealloc);
  t.tp_new = core_new;
  t.tp_traverse = core_traverse;
  t.tp_clear = core_clear;
  t.tp_methods = core_methods;
  t.tp_getset = core_getset;
  t.tp_doc = "Core(pyloop, backend=None): an eddy loop driven by the asyncio loop `pyloop`.";
  return t;
}();

}  // namespace eddypy
