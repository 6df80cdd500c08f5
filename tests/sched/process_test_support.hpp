// Shared by the process_pool, subprocess and signal tests: the backend parameter,
// a runner that closes the loop and checks nothing is left open, and a way to
// start this test binary as a child.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <unistd.h>

#include <eddy/runtime/loop.hpp>
#include <string>
#include <system_error>
#include <vector>

extern char** environ;

namespace eddy_test {

// available_backends() probes each backend once, before any test counts fds: libuv
// opens a process-wide pipe (its signal lock) at its first uv_loop_init and keeps
// it for the life of the process, which a test's fd-leak check must not blame on
// the first libuv loop it makes. Every later loop is checked as before.
inline std::vector<eddy::backend_kind> backends() { return eddy::available_backends(); }

inline std::string backend_name(const ::testing::TestParamInfo<eddy::backend_kind>& info) {
  return std::string(eddy::backend_name(info.param));
}

inline int open_fd_count() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // the directory itself
}

class backend_test : public ::testing::TestWithParam<eddy::backend_kind> {};

/// Runs `main` on a fresh loop of the given backend, closes the loop, and checks the
/// loop has nothing alive and the process has as many fds open as before.
inline void run_on(eddy::backend_kind kind, eddy::task<void> main) {
  const int fds_before = open_fd_count();
  {
    std::unique_ptr<eddy::loop> l;
    try {
      l = std::make_unique<eddy::loop>(eddy::loop_options{.backend = kind});
    } catch (const std::system_error& e) {
      GTEST_SKIP() << "backend unavailable here: " << e.what();
    }
    l->run(std::move(main));
    l->close();
    EXPECT_EQ(l->stats().live_tasks, 0u);
  }
  EXPECT_EQ(open_fd_count(), fds_before) << "fds leaked";
}

/// Starts this test binary with `args`, its stdout on `out_fd`; returns the pid.
inline pid_t spawn_self(const std::vector<std::string>& args, int out_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  std::vector<std::string> all = {"self"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int e = ::posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (e != 0) throw std::system_error(e, std::generic_category(), "spawn_self");
  return pid;
}

}  // namespace eddy_test
