// Backend selection (RELIABILITY.md row 15): io_uring refused with EPERM, as under
// a container's seccomp profile, makes `auto` fall back to epoll and say why; with
// epoll_pwait2 refused too (EPERM, as under container profiles older than that
// call) or missing (ENOSYS, kernels before 5.11) the epoll backend waits with
// epoll_wait, and sockets, timers and cross-thread wakeups work there; with no
// epoll wait call left `auto` takes libuv and an echo round trip works on it;
// with epoll_create1 refused there is no backend left (libuv on Linux is built on
// epoll) and the error names every reason; an explicit io_uring request fails
// loudly; EDDY_BACKEND is validated; files open where openat2 is missing or
// refused.
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <initializer_list>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"
#include "support/seccomp_refuse.hpp"

namespace {

// Makes each system call in `nrs` fail with EPERM in this process (a real seccomp
// filter, as a container runtime installs).
bool refuse(std::initializer_list<int> nrs) { return eddy_test::refuse_syscalls(nrs, EPERM); }

bool refuse_io_uring() { return refuse({__NR_io_uring_setup}); }

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

bool has_libuv() {
  for (eddy::backend_kind k : eddy::backend_kinds())
    if (k == eddy::backend_kind::libuv) return true;
  return false;
}

// An echo round trip of 100 kB through eddy's sockets on whatever backend runs.
eddy::task<bool> echo_round_trip() {
  auto lis = eddy_test::loopback_listener();
  auto srv = eddy::spawn(eddy_test::echo_server(&lis, 1));
  auto c = co_await eddy::tcp_stream::connect(lis.local_address());
  const auto data = eddy_test::payload(100'000, 7);
  co_await c.write_all(data);
  c.shutdown_write();
  std::vector<std::byte> got;
  co_await c.read_to_end(got);
  co_await srv;
  co_await c.close();
  co_await lis.close();
  co_return got == data;
}

// The loop's work on the epoll_wait path: a timer never fires early (its timeout
// is rounded up, never down), a loop blocked with no timer wakes for another
// thread's post, and the echo round trip. 0 if all held, else which failed.
int epoll_wait_path_works(eddy::loop& l) {
  using namespace std::chrono_literals;
  const auto t0 = eddy::clock::now();
  l.run([]() -> eddy::task<void> { co_await eddy::sleep_for(2500us); }());
  if (eddy::clock::now() - t0 < 2500us) return 21;
  eddy::event posted;
  std::thread poster([&] {
    std::this_thread::sleep_for(20ms);
    (void)l.call_soon_threadsafe([&] { posted.set(); });
  });
  l.run([](eddy::event& e) -> eddy::task<void> { co_await e.wait(); }(posted));
  poster.join();
  if (!l.run(echo_round_trip())) return 22;
  return 0;
}

TEST(backend_select_test, auto_takes_epoll_on_epoll_wait_when_epoll_pwait2_is_refused_too) {
  env_guard g;
  ::unsetenv("EDDY_BACKEND");
  const int rc = in_child([] {
    if (!refuse({__NR_io_uring_setup, __NR_epoll_pwait2})) return 10;
    eddy::loop l;  // from_env, unset: auto
    if (l.backend() != eddy::backend_kind::epoll) return 11;
    const std::string& why = l.backend_reason();
    if (why.find("io_uring not used") == std::string::npos) return 12;
    if (why.find("epoll: epoll_pwait2: EPERM") == std::string::npos) return 13;
    if (why.find("epoll_wait instead") == std::string::npos) return 14;
    const eddy::kernel_features f = eddy::probe_kernel_features();
    if (!f.epoll || f.epoll_pwait2) return 15;
    const int r = epoll_wait_path_works(l);
    l.close();
    return r;
  });
  EXPECT_EQ(rc, 0);
}

TEST(backend_select_test, an_epoll_loop_on_a_kernel_without_epoll_pwait2_waits_with_epoll_wait) {
  const int rc = in_child([] {
    if (!eddy_test::refuse_syscalls({__NR_epoll_pwait2}, ENOSYS)) return 10;
    const eddy::kernel_features f = eddy::probe_kernel_features();
    if (!f.epoll || f.epoll_pwait2) return 11;
    if (f.epoll_why.find("kernel older than 5.11") == std::string::npos) return 12;
    eddy::loop_options o;
    o.backend = eddy::backend_kind::epoll;  // requested: no probe; the first wait finds out
    eddy::loop l(o);
    const int r = epoll_wait_path_works(l);
    l.close();
    return r;
  });
  EXPECT_EQ(rc, 0);
}

TEST(backend_select_test, auto_falls_back_to_libuv_when_no_epoll_wait_is_left_and_echo_works) {
  if (!has_libuv()) GTEST_SKIP() << "eddy built without libuv";
  env_guard g;
  ::unsetenv("EDDY_BACKEND");
  const int rc = in_child([] {
    // libuv waits with epoll_pwait where epoll_wait is missing; eddy's epoll backend
    // knows only epoll_pwait2 and epoll_wait.
    if (!eddy_test::refuse_syscalls({__NR_io_uring_setup, __NR_epoll_pwait2, __NR_epoll_wait}, ENOSYS))
      return 10;
    eddy::loop l;
    if (l.backend() != eddy::backend_kind::libuv) return 11;
    const std::string& why = l.backend_reason();
    if (why.find("io_uring not used") == std::string::npos) return 12;
    if (why.find("epoll not used: epoll_pwait2: ENOSYS") == std::string::npos) return 13;
    if (why.find("epoll_wait: ENOSYS") == std::string::npos) return 14;
    const bool ok = l.run(echo_round_trip());
    l.close();
    return ok ? 0 : 15;
  });
  EXPECT_EQ(rc, 0);
}

// Files without openat2 (Linux 5.6; container profiles older than it refuse it
// with EPERM): an open without a root falls back to openat on every backend (the
// blocking pool runs the call; io_uring's own OPENAT2 op is not a system call a
// filter sees, so the pool is forced), and one with root_fd fails saying why.
int files_work_without_openat2(int err) {
  if (!eddy_test::refuse_syscalls({__NR_openat2}, err)) return 10;
  eddy::fs::set_io_path(eddy::fs::io_path::pool);
  char tmpl[] = "/tmp/eddy_openat2_XXXXXX";
  const char* dir = ::mkdtemp(tmpl);
  if (dir == nullptr) return 11;
  const std::string path = std::string(dir) + "/f";
  int rc = 0;
  for (eddy::backend_kind k : eddy::available_backends()) {
    eddy::loop_options o;
    o.backend = k;
    eddy::loop l(o);
    rc = l.run([](std::string path, std::string dir, int err) -> eddy::task<int> {
      namespace fs = eddy::fs;
      auto w = co_await fs::file::open(path, fs::open_flags::write | fs::open_flags::create |
                                                 fs::open_flags::truncate);
      const std::string text = "without openat2";
      co_await w.write_at(std::as_bytes(std::span(text)), 0);
      co_await w.close();
      auto r = co_await fs::file::open(path, fs::open_flags::read);
      std::string back(text.size(), '\0');
      const std::size_t n = co_await r.read_at(std::as_writable_bytes(std::span(back)), 0);
      co_await r.close();
      if (n != text.size() || back != text) co_return 20;
      const int root = ::open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
      try {
        auto f = co_await fs::file::open("f", fs::open_flags::read, {.root_fd = root});
        co_await f.close();
        ::close(root);
        co_return 21;  // the root cannot be kept without openat2
      } catch (const std::system_error& e) {
        ::close(root);
        const std::string m = e.what();
        if (e.code().value() != err || m.find("root_fd needs openat2") == std::string::npos) co_return 22;
      }
      co_return 0;
    }(path, dir, err));
    l.close();
    if (rc != 0) break;
  }
  ::unlink(path.c_str());
  ::rmdir(dir);
  return rc;
}

TEST(backend_select_test, files_open_without_openat2_missing_or_refused) {
  EXPECT_EQ(in_child([] { return files_work_without_openat2(ENOSYS); }), 0);
  EXPECT_EQ(in_child([] { return files_work_without_openat2(EPERM); }), 0);
}

TEST(backend_select_test, with_epoll_create1_refused_no_backend_is_left_and_the_error_names_each) {
  env_guard g;
  ::unsetenv("EDDY_BACKEND");
  const int rc = in_child([] {
    if (!refuse({__NR_io_uring_setup, __NR_epoll_create1})) return 10;
    try {
      eddy::loop l;
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      if (m.find("io_uring not used: io_uring_setup: EPERM") == std::string::npos) return 11;
      if (m.find("epoll not used: epoll_create1: EPERM") == std::string::npos) return 12;
      if (has_libuv() && m.find("libuv not used: uv_loop_init: EPERM") == std::string::npos) return 13;
      return 0;
    }
    return 14;
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
