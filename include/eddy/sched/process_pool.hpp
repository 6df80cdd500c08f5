// eddy::process_pool: helper processes for CPU work in another address space.
#pragma once

#include <stdexcept>
#include <string>

#include <eddy/sched/remote.hpp>

namespace eddy {

/// A helper process died while running a call (or failed to start). The message
/// says which helper and how it ended: "exited with status 3", "was killed by signal
/// 9 (SIGKILL)".
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// try { co_await pool.call<risky>(x); }
/// catch (const eddy::worker_crashed& e) { log(e.what()); }  // helper replaced already
/// ```
class worker_crashed : public std::runtime_error {
 public:
  explicit worker_crashed(const std::string& what) : std::runtime_error("eddy: " + what) {}
};

class process_pool {
 public:
  /// Routes helper mode: call this first thing in main(). In a helper started by a
  /// process_pool it serves calls and never returns; otherwise it returns at once.
  static void helper_main_if_requested(int argc, char** argv);
};

}  // namespace eddy
