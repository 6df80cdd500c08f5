// eddyloop's Handle and TimerHandle (see handle.hpp).
#include "handle.hpp"

#include <string>
#include <vector>

namespace eddypy {

namespace {

handle_object* g_timers_head = nullptr;  // pending timers of every core, unlinked on fire/cancel

void link_timer(handle_object* h) {
  h->prev = nullptr;
  h->next = g_timers_head;
  if (g_timers_head != nullptr) g_timers_head->prev = h;
  g_timers_head = h;
}

void unlink_timer(handle_object* h) {
  if (h->prev == nullptr && h->next == nullptr && g_timers_head != h) return;
  if (h->prev != nullptr) h->prev->next = h->next;
  else g_timers_head = h->next;
  if (h->next != nullptr) h->next->prev = h->prev;
  h->prev = h->next = nullptr;
}

void drop_timer(handle_object* h) {
  unlink_timer(h);
  eddy::timer_handle* t = h->timer;
  h->timer = nullptr;
  if (t != nullptr) {
    t->cancel();
    delete t;  // may release the last reference the timer held on h
  }
}

void handle_dealloc(PyObject* self) {
  auto* h = reinterpret_cast<handle_object*>(self);
  PyObject_GC_UnTrack(self);
  if (h->weakrefs != nullptr) PyObject_ClearWeakRefs(self);
  unlink_timer(h);
  delete h->timer;
  Py_CLEAR(h->callback);
  Py_CLEAR(h->args);
  Py_CLEAR(h->context);
  Py_CLEAR(h->core);
  Py_CLEAR(h->source_traceback);
  Py_TYPE(self)->tp_free(self);
}

int handle_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* h = reinterpret_cast<handle_object*>(self);
  Py_VISIT(h->callback);
  Py_VISIT(h->args);
  Py_VISIT(h->context);
  Py_VISIT(reinterpret_cast<PyObject*>(h->core));
  Py_VISIT(h->source_traceback);
  return 0;
}

int handle_clear(PyObject* self) {
  auto* h = reinterpret_cast<handle_object*>(self);
  Py_CLEAR(h->callback);
  Py_CLEAR(h->args);
  Py_CLEAR(h->context);
  Py_CLEAR(h->source_traceback);
  return 0;
}

PyObject* handle_cancel(PyObject* self, PyObject*) {
  auto* h = reinterpret_cast<handle_object*>(self);
  if (!h->cancelled) {
    h->cancelled = true;
    Py_INCREF(self);
    drop_timer(h);
    // asyncio drops the callback and its arguments at cancel() so they can be freed.
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    Py_DECREF(self);
  }
  Py_RETURN_NONE;
}

PyObject* handle_cancelled(PyObject* self, PyObject*) {
  return PyBool_FromLong(reinterpret_cast<handle_object*>(self)->cancelled);
}

PyObject* handle_when(PyObject* self, PyObject*) {
  auto* h = reinterpret_cast<handle_object*>(self);
  if (!h->is_timer) {
    PyErr_SetString(PyExc_AttributeError, "'Handle' object has no attribute 'when'");
    return nullptr;
  }
  return PyFloat_FromDouble(h->when);
}

PyObject* handle_get_context(PyObject* self, PyObject*) {
  auto* h = reinterpret_cast<handle_object*>(self);
  return Py_NewRef(h->context);
}

PyObject* handle_run(PyObject* self, PyObject*) {
  run_handle(reinterpret_cast<handle_object*>(self));
  Py_RETURN_NONE;
}

PyObject* handle_repr(PyObject* self) {
  auto* h = reinterpret_cast<handle_object*>(self);
  const char* kind = h->is_timer ? "TimerHandle" : "Handle";
  if (h->cancelled) return PyUnicode_FromFormat("<%s cancelled>", kind);
  if (h->is_timer) {
    PyObject* when = PyFloat_FromDouble(h->when);
    if (when == nullptr) return nullptr;
    PyObject* r = PyUnicode_FromFormat("<%s when=%R %R%R>", kind, when, h->callback, h->args);
    Py_DECREF(when);
    return r;
  }
  return PyUnicode_FromFormat("<%s %R%R>", kind, h->callback, h->args);
}

PyObject* handle_get_source_traceback(PyObject* self, void*) {
  auto* h = reinterpret_cast<handle_object*>(self);
  return Py_NewRef(h->source_traceback != nullptr ? h->source_traceback : Py_None);
}
int handle_set_source_traceback(PyObject* self, PyObject* v, void*) {
  auto* h = reinterpret_cast<handle_object*>(self);
  Py_XSETREF(h->source_traceback, v != nullptr && v != Py_None ? Py_NewRef(v) : nullptr);
  return 0;
}

PyGetSetDef handle_getset[] = {
    {"_source_traceback", handle_get_source_traceback, handle_set_source_traceback,
     "Where the callback was scheduled, in debug mode (asyncio's format_helpers.extract_stack); else None",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMethodDef handle_methods[] = {
    {"cancel", handle_cancel, METH_NOARGS, "Cancel the callback; no effect if it already ran."},
    {"cancelled", handle_cancelled, METH_NOARGS, "True if cancel() was called."},
    {"when", handle_when, METH_NOARGS, "The loop time a TimerHandle is scheduled for."},
    {"get_context", handle_get_context, METH_NOARGS, "The contextvars.Context the callback runs in."},
    {"_run", handle_run, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

PyTypeObject handle_type = [] {
  PyTypeObject t = new_type("eddyloop._core.Handle", sizeof(handle_object),
                            Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, handle_dealloc);
  t.tp_traverse = handle_traverse;
  t.tp_clear = handle_clear;
  t.tp_repr = handle_repr;
  t.tp_methods = handle_methods;
  t.tp_getset = handle_getset;
  t.tp_weaklistoffset = offsetof(handle_object, weakrefs);
  t.tp_doc = "A callback scheduled on an eddyloop loop (asyncio.Handle's interface).";
  return t;
}();

handle_object* new_handle(core_object* core, PyObject* const* args, Py_ssize_t nargs,
                          PyObject* context, bool is_timer, const char* method) {
  PyObject* cb = args[0];
  if (PyCoro_CheckExact(cb)) {
    PyErr_Format(PyExc_TypeError, "coroutines cannot be used with %s()", method);
    return nullptr;
  }
  if (!PyCallable_Check(cb)) {
    PyErr_Format(PyExc_TypeError, "a callable object was expected by %s(), got %R", method, cb);
    return nullptr;
  }
  PyObject* tuple = PyTuple_New(nargs - 1);
  if (tuple == nullptr) return nullptr;
  for (Py_ssize_t i = 1; i < nargs; ++i) PyTuple_SET_ITEM(tuple, i - 1, Py_NewRef(args[i]));
  PyObject* ctx;
  if (context == nullptr || context == Py_None) {
    ctx = PyContext_CopyCurrent();
    if (ctx == nullptr) {
      Py_DECREF(tuple);
      return nullptr;
    }
  } else {
    ctx = Py_NewRef(context);
  }
  auto* h = PyObject_GC_New(handle_object, &handle_type);
  if (h == nullptr) {
    Py_DECREF(tuple);
    Py_DECREF(ctx);
    return nullptr;
  }
  h->callback = Py_NewRef(cb);
  h->args = tuple;
  h->context = ctx;
  h->core = reinterpret_cast<core_object*>(Py_NewRef(reinterpret_cast<PyObject*>(core)));
  h->timer = nullptr;
  h->prev = h->next = nullptr;
  h->when = 0;
  h->cancelled = false;
  h->is_timer = is_timer;
  h->weakrefs = nullptr;
  h->source_traceback = nullptr;
  if (is_timer) link_timer(h);
  PyObject_GC_Track(reinterpret_cast<PyObject*>(h));
  return h;
}

void run_handle(handle_object* h) {
  if (h->is_timer) {
    unlink_timer(h);
    eddy::timer_handle* t = h->timer;
    h->timer = nullptr;
    delete t;  // the firing timer still holds its own reference until it returns
  }
  // A closed loop runs nothing more (asyncio's close() drops the ready queue).
  if (h->cancelled || h->callback == nullptr || h->core->closed) return;
  const long long t0 = h->core->slow_ns != 0 ? monotonic_ns() : 0;
  PyObject* r = call_in_context(h->context, h->callback, &PyTuple_GET_ITEM(h->args, 0),
                                PyTuple_GET_SIZE(h->args));
  if (t0 != 0) check_slow(h, monotonic_ns() - t0);
  if (r == nullptr) {
    if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
      report_error(h->core, "");  // kept for run_forever, which re-raises it
      return;
    }
    // The message is asyncio's ("Exception in callback f(1) at file.py:3"); the
    // exception is put aside while it is built, as Python code runs for it.
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    const std::string msg = std::string("Exception in callback ") + describe_callback(h->callback, h->args);
    PyErr_Restore(type, value, tb);
    // As asyncio's Handle._run: the context names where it was scheduled in debug
    // mode, which the default exception handler prints ("Object created at").
    if (h->source_traceback != nullptr)
      report_error(h->core, msg.c_str(), "handle", reinterpret_cast<PyObject*>(h), "source_traceback",
                   h->source_traceback);
    else
      report_error(h->core, msg.c_str(), "handle", reinterpret_cast<PyObject*>(h));
    return;
  }
  Py_DECREF(r);
}

std::string describe_callback(PyObject* callback, PyObject* args) {
  std::string out = "?";
  PyObject* mod = PyImport_ImportModule("asyncio.format_helpers");
  PyObject* s = mod != nullptr ? PyObject_CallMethod(mod, "_format_callback_source", "OO", callback,
                                                     args != nullptr ? args : Py_None)
                               : nullptr;
  if (s == nullptr || !PyUnicode_Check(s)) {
    Py_XDECREF(s);
    PyErr_Clear();
    s = PyObject_Repr(callback);
  }
  const char* c = s != nullptr ? PyUnicode_AsUTF8(s) : nullptr;
  if (c != nullptr) out = c;
  else PyErr_Clear();
  Py_XDECREF(s);
  Py_XDECREF(mod);
  return out;
}

void cancel_pending_timers(core_object* core) {
  std::vector<PyObject*> mine;
  for (handle_object* h = g_timers_head; h != nullptr; h = h->next)
    if (h->core == core) mine.push_back(Py_NewRef(reinterpret_cast<PyObject*>(h)));
  for (PyObject* o : mine) {
    auto* h = reinterpret_cast<handle_object*>(o);
    h->cancelled = true;
    drop_timer(h);
    Py_DECREF(o);
  }
}

bool init_handles(PyObject* module) {
  if (PyType_Ready(&handle_type) < 0) return false;
  Py_INCREF(&handle_type);
  return PyModule_AddObject(module, "Handle", reinterpret_cast<PyObject*>(&handle_type)) == 0;
}

}  // namespace eddypy
