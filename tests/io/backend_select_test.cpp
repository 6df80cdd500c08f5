// Backend selection (RELIABILITY.md row 15): io_uring refused with EPERM, as under
// a container's seccomp profile, makes `auto` fall back to epoll and say why; an
// explicit io_uring request fails loudly; EDDY_BACKEND is validated.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <string>

#include "support/loop_fixture.hpp"

namespace {

// Makes io_uring_setup fail with EPERM in this process (a real seccomp filter).
bool refuse_io_uring() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

// Runs `f` in a child process; returns its exit code.
template <class F>
int in_child(F f) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(f());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

struct env_guard {
  std::string saved;
  bool had;
  env_guard() {
    const char* v = std::getenv("EDDY_BACKEND");
    had = v != nullptr;
    if (had) saved = v;
  }
  ~env_guard() {
    if (had) ::setenv("EDDY_BACKEND", saved.c_str(), 1);
    else ::unsetenv("EDDY_BACKEND");
  }
};

}  // namespace

TEST(backend_select_test, auto_falls_back_to_epoll_when_io_uring_is_refused_and_says_why) {
  const int rc = in_child([] {
    if (!refuse_io_uring()) return 10;
    eddy::loop_options o;
    o.backend = eddy::backend_kind::automatic;
    eddy::loop l(o);
    if (l.backend() != eddy::backend_kind::epoll) return 11;
    if (l.backend_reason().find("Operation not permitted") == std::string::npos) return 12;
    std::string why;
    if (eddy::backend_available(eddy::backend_kind::io_uring, &why)) return 13;
    // The suite's work runs on the fallback.
    const int v = l.run([]() -> eddy::task<int> {
      co_await eddy::sleep_for(std::chrono::milliseconds(1));
      co_return 3;
    }());
    return v == 3 ? 0 : 14;
  });
  EXPECT_EQ(rc, 0);
}

TEST(backend_select_test, an_explicit_io_uring_request_fails_loudly_when_refused) {
  const int rc = in_child([] {
    if (!refuse_io_uring()) return 10;
    eddy::loop_options o;
    o.backend = eddy::backend_kind::io_uring;
    try {
      eddy::loop l(o);
    } catch (const std::system_error& e) {
      return e.code().value() == EPERM ? 0 : 11;
    }
    return 12;
  });
  EXPECT_EQ(rc, 0);
}

TEST(backend_select_test, eddy_backend_is_validated) {
  env_guard g;
  ::setenv("EDDY_BACKEND", "kqueue", 1);
  try {
    eddy::loop l;
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kqueue"), std::string::npos);
  }
  ::setenv("EDDY_BACKEND", "epoll", 1);
  eddy::loop l;
  EXPECT_EQ(l.backend(), eddy::backend_kind::epoll);
}
