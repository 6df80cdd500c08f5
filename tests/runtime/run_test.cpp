// eddy::run: values, exceptions, and SIGINT shutting a program down cleanly
// (real signals sent to real child processes).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include <eddy/eddy.hpp>

using namespace std::chrono_literals;
using eddy::task;

namespace {

struct child {
  pid_t pid = -1;
  int out = -1;  // what the child reported
};

// Forks a child that runs `body(report_fd)` and exits with its return value.
template <class F>
child start(F body) {
  int p[2];
  EXPECT_EQ(::pipe(p), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    ::_exit(body(p[1]));
  }
  ::close(p[1]);
  return {pid, p[0]};
}

void report(int fd, const char* what) { [[maybe_unused]] auto n = ::write(fd, what, std::strlen(what)); }

std::string read_until(int fd, const std::string& want) {
  std::string got;
  char buf[64];
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (got.find(want) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

int wait_status(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

task<int> sleepy_main(int fd) {
  report(fd, "started;");
  try {
    co_await eddy::sleep_for(30s);
  } catch (const eddy::cancelled_error&) {
    report(fd, "cleanup;");
    throw;
  }
  co_return 0;
}

}  // namespace

TEST(run_test, returns_the_value_and_rethrows_the_exception) {
  EXPECT_EQ(eddy::run([]() -> task<int> { co_return 5; }()), 5);
  EXPECT_THROW(eddy::run([]() -> task<void> {
                 co_await eddy::yield_now();
                 throw std::runtime_error("x");
               }()),
               std::runtime_error);
}

TEST(run_test, first_sigint_cancels_main_runs_cleanup_and_dies_by_sigint) {
  child c = start([](int fd) { return eddy::run(sleepy_main(fd)); });
  ASSERT_NE(read_until(c.out, "started;").find("started;"), std::string::npos);
  std::this_thread::sleep_for(20ms);  // let the child block in the loop
  ::kill(c.pid, SIGINT);
  const std::string rest = read_until(c.out, "cleanup;");
  const int st = wait_status(c.pid);
  ::close(c.out);
  EXPECT_NE(rest.find("cleanup;"), std::string::npos) << "main's cleanup did not run";
  ASSERT_TRUE(WIFSIGNALED(st)) << "status " << st;
  EXPECT_EQ(WTERMSIG(st), SIGINT);
}

TEST(run_test, a_main_that_handles_the_cancellation_returns_its_value) {
  child c = start([](int fd) {
    return eddy::run([](int fd) -> task<int> {
      report(fd, "started;");
      bool cancelled = false;
      try {
        co_await eddy::sleep_for(30s);
      } catch (const eddy::cancelled_error&) {
        cancelled = true;
      }
      co_return cancelled ? 7 : 0;
    }(fd));
  });
  read_until(c.out, "started;");
  std::this_thread::sleep_for(20ms);
  ::kill(c.pid, SIGINT);
  const int st = wait_status(c.pid);
  ::close(c.out);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 7);
}

TEST(run_test, a_program_with_its_own_sigint_disposition_keeps_it) {
  child c = start([](int fd) {
    ::signal(SIGINT, SIG_IGN);
    return eddy::run([](int fd) -> task<int> {
      report(fd, "started;");
      co_await eddy::sleep_for(200ms);  // SIGINT arrives meanwhile and is ignored
      co_return 3;
    }(fd));
  });
  read_until(c.out, "started;");
  ::kill(c.pid, SIGINT);
  const int st = wait_status(c.pid);
  ::close(c.out);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 3);
}
