// Shared by the C++ sources of eddyloop._core: the Core object (one eddy::loop
// driven from Python), its callback handles and the helpers that route Python
// errors the way asyncio does.
//
// Invariants:
//  - Python runs only on the loop's thread, with the GIL held. The loop releases
//    the GIL only around its kernel wait (eddy::loop::set_block_hooks), where no
//    callback, task or completion runs.
//  - SystemExit and KeyboardInterrupt raised by a callback stop the loop and are
//    re-raised by run_forever (asyncio's Handle._run lets them through); any
//    other exception goes to loop.call_exception_handler().
//  - Every PyObject a C++ task or callback holds is a strong reference released
//    on the loop thread, so close() leaves no reference behind.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <unordered_map>

#include <eddy/runtime/loop.hpp>

namespace eddypy {

struct core_object {
  PyObject_HEAD
  eddy::loop* loop;
  PyObject* pyloop;        // the asyncio loop this core drives (strong; cleared by close)
  PyObject* fatal;         // a SystemExit/KeyboardInterrupt to re-raise from run_forever
  PyThreadState* saved;    // between the block hooks
  bool stop_pending;       // stop() called while not running
  bool ring_writes;        // io_uring: transport writes go through the ring (transport.cpp)
  bool send_now;           // EDDYLOOP_SEND_NOW: write() sends at once instead of once per turn
  bool closed;
  long long slow_ns;       // name callbacks slower than this (operability.cpp); 0 = off
  // The stream transports whose fd is still open, by fd (borrowed: each removes
  // itself when its fd goes): add_reader and friends refuse their fds, as
  // asyncio's selector loop does (_ensure_fd_no_transport).
  std::unordered_map<int, PyObject*>* transports;
};

extern PyTypeObject core_type;
extern PyTypeObject handle_type;
extern PyTypeObject* transport_type;  // a heap type (its base, asyncio.Transport, is one)

// What every eddyloop._core type sets (name "eddyloop._core.X", instance size,
// flags, dealloc); each definition adds its own slots to the copy it gets back.
inline PyTypeObject new_type(const char* name, Py_ssize_t size, unsigned long flags,
                             destructor dealloc) {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = name;
  t.tp_basicsize = size;
  t.tp_flags = flags;
  t.tp_dealloc = dealloc;
  return t;
}

// A strong reference that is released when the holder dies (GIL held).
class ref {
 public:
  ref() noexcept = default;
  explicit ref(PyObject* o) noexcept : o_(o) { Py_XINCREF(o_); }
  static ref steal(PyObject* o) noexcept {
    ref r;
    r.o_ = o;
    return r;
  }
  ref(const ref& r) noexcept : o_(r.o_) { Py_XINCREF(o_); }
  ref(ref&& r) noexcept : o_(r.o_) { r.o_ = nullptr; }
  ref& operator=(ref r) noexcept {
    PyObject* t = o_;
    o_ = r.o_;
    r.o_ = t;
    return *this;
  }
  ~ref() { Py_XDECREF(o_); }
  PyObject* get() const noexcept { return o_; }
  PyObject* release() noexcept {
    PyObject* t = o_;
    o_ = nullptr;
    return t;
  }
  explicit operator bool() const noexcept { return o_ != nullptr; }

 private:
  PyObject* o_ = nullptr;
};

// Called with a Python error set, after a callback failed. SystemExit and
// KeyboardInterrupt stop the loop and are kept for run_forever; anything else
// goes to loop.call_exception_handler({'message': message, 'exception': e, key: obj...}).
void report_error(core_object* core, const char* message, const char* key1 = nullptr,
                  PyObject* obj1 = nullptr, const char* key2 = nullptr, PyObject* obj2 = nullptr);

// Runs callback(*args) in `context` (may be null). Returns the result or null.
PyObject* call_in_context(PyObject* context, PyObject* callback, PyObject* const* args,
                          Py_ssize_t nargs);

// Raises RuntimeError('Event loop is closed') and returns false if it is.
bool check_open(core_object* core);

// Module-level objects looked up once (asyncio internals the loop reuses).
struct module_state {
  PyObject* copy_context;   // contextvars.copy_context
};
extern module_state g;

bool init_handles(PyObject* module);
bool init_transports(PyObject* module);

}  // namespace eddypy
