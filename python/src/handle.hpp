// Handle and TimerHandle for eddyloop (asyncio.Handle / asyncio.TimerHandle's
// interface): a callback with its arguments and context, run once by the loop
// unless cancelled. A pending timer handle and its eddy timer keep each other
// alive; firing or cancel() breaks that cycle, and Core.close() cancels every
// timer still pending so nothing outlives the loop.
#pragma once

#include <string>

#include <eddy/runtime/timer_handle.hpp>

#include "module.hpp"

namespace eddypy {

struct handle_object {
  PyObject_HEAD
  PyObject* callback;
  PyObject* args;       // tuple
  PyObject* context;    // contextvars.Context
  core_object* core;    // strong
  eddy::timer_handle* timer;  // pending timers only
  handle_object* prev;  // core's list of pending timers
  handle_object* next;
  double when;
  bool cancelled;
  bool is_timer;
  PyObject* weakrefs;
  PyObject* source_traceback;  // debug mode: where it was scheduled (asyncio's _source_traceback), or null
};

// New handle for callback(*args[1:]) where args[0] is the callback (vectorcall
// layout). Returns null with an error set.
handle_object* new_handle(core_object* core, PyObject* const* args, Py_ssize_t nargs,
                          PyObject* context, bool is_timer, const char* method);
void run_handle(handle_object* h);

// asyncio's description of a callback for error messages: "f(1, 2) at file.py:3".
// Call with no Python error set.
std::string describe_callback(PyObject* callback, PyObject* args);

// Slow-callback naming (operability.cpp): the clock, and the report of a callback
// that ran longer than core->slow_ns.
long long monotonic_ns() noexcept;
void check_slow(handle_object* h, long long ns);
void cancel_pending_timers(core_object* core);

}  // namespace eddypy
