// Helpers shared by the thread-pool tests: waiting for a condition without timed
// assertions, and counting this process's threads.
#pragma once

#include <dirent.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <thread>

namespace eddy_test {

/// Polls `done` until it holds or `limit` passes; returns its last value. The limit only
/// turns a hang into a failure: tests assert on the condition, never on elapsed time.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// Threads of this process, from /proc/self/task.
inline std::size_t thread_count() {
  std::size_t n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

/// True once the process is back to `n` threads. A joined thread can still be
/// listed for a moment: pthread_join returns when the kernel clears the thread's id
/// on its way out, a little before /proc/self/task stops listing it (a 2-core CI
/// machine caught one: 2 threads against a baseline of 1, right after shutdown).
inline bool threads_return_to(std::size_t n) {
  return eventually([n] { return thread_count() == n; });
}

}  // namespace eddy_test
