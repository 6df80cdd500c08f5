// without_epoll_pwait2 PROGRAM [ARGS...]: runs PROGRAM with epoll_pwait2 failing
// ENOSYS, as on a kernel before 5.11, so a test suite runs on eddy's epoll_wait
// path (tests/io/meson.build runs the epoll socket suites this way).
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "support/seccomp_refuse.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: without_epoll_pwait2 PROGRAM [ARGS...]\n");
    return 2;
  }
  if (!eddy_test::refuse_syscalls({__NR_epoll_pwait2}, ENOSYS)) {
    std::fprintf(stderr, "without_epoll_pwait2: seccomp: %s\n", std::strerror(errno));
    return 2;
  }
  ::execv(argv[1], argv + 1);
  std::fprintf(stderr, "without_epoll_pwait2: %s: %s\n", argv[1], std::strerror(errno));
  return 127;
}
