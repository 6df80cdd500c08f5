// subprocess: spawn options, pipes, communicate without deadlock, wait on pidfds,
// kill, no zombies (200 children at once, dropped handles), bad input.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/subprocess.hpp>
#include <string>
#include <thread>
#include <vector>

#include "process_test_support.hpp"

using namespace std::chrono_literals;
using eddy::stdio;
using eddy::subprocess;
using eddy::task;
using eddy_test::run_on;

namespace {

// True when this process has no child at all, alive or zombie.
bool no_children() {
  siginfo_t si{};
  return ::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 && errno == ECHILD;
}

class Subprocess : public eddy_test::backend_test {
 protected:
  void SetUp() override { ASSERT_TRUE(no_children()) << "a previous test left children"; }
};

task<void> exit_codes() {
  auto p = subprocess::spawn({.argv = {"sh", "-c", "exit 7"}});
  EXPECT_GT(p.pid(), 0);
  EXPECT_EQ(co_await p.wait(), 7);
  EXPECT_EQ(p.exit_code(), 7);
  EXPECT_EQ(co_await p.wait(), 7);  // waiting again returns the same

  auto q = subprocess::spawn({.argv = {"sleep", "30"}});
  EXPECT_FALSE(q.try_wait());
  q.terminate();
  EXPECT_EQ(co_await q.wait(), -SIGTERM);
  q.kill();  // after the exit: nothing happens
}

TEST_P(Subprocess, WaitReturnsTheExitStatusOrMinusTheSignal) {
  run_on(GetParam(), exit_codes());
}

task<void> communicate_big() {
  // 10 MiB in and 10 MiB out at the same time: cat fills its stdout pipe long
  // before we finish writing stdin, so a sequential implementation would deadlock.
  std::string input(10 << 20, '\0');
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>(i * 7 + i / 4096);
  auto p = subprocess::spawn({.argv = {"cat"},
                              .std_in = stdio::pipe(),
                              .std_out = stdio::pipe(),
                              .std_err = stdio::pipe()});
  eddy::subprocess_result r = co_await p.communicate(input);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.size(), input.size());
  EXPECT_TRUE(r.out == input) << "cat returned different bytes";
  EXPECT_TRUE(r.err.empty());
}

TEST_P(Subprocess, Communicate10MiBEachWayDoesNotDeadlock) {
  run_on(GetParam(), communicate_big());
}

task<void> communicate_stderr_and_early_exit() {
  auto p = subprocess::spawn({.argv = {"sh", "-c", "echo out; echo err >&2; exit 3"},
                              .std_in = stdio::pipe(),
                              .std_out = stdio::pipe(),
                              .std_err = stdio::pipe()});
  // The child never reads its stdin: EPIPE on our side is tolerated, as Python does.
  eddy::subprocess_result r = co_await p.communicate(std::string(1 << 20, 'x'));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST_P(Subprocess, CommunicateCollectsStderrAndToleratesAChildThatIgnoresStdin) {
  run_on(GetParam(), communicate_stderr_and_early_exit());
}

task<void> streaming() {
  auto p = subprocess::spawn({.argv = {"sh", "-c", "read line; echo \"got $line\""},
                              .std_in = stdio::pipe(),
                              .std_out = stdio::pipe()});
  co_await p.write_stdin("hello\n");
  std::string out;
  char buf[64];
  for (;;) {
    std::size_t n = co_await p.read_stdout(buf);
    if (n == 0) break;
    out.append(buf, n);
  }
  EXPECT_EQ(out, "got hello\n");
  EXPECT_EQ(co_await p.wait(), 0);
}

TEST_P(Subprocess, PipesAreAsyncStreams) {
  run_on(GetParam(), streaming());
}

task<void> as_stream() {
  auto p = subprocess::spawn({.argv = {"sh", "-c", "printf 'one\\ntwo\\n'; printf 'oops\\n' >&2"},
                              .std_out = stdio::pipe(),
                              .std_err = stdio::pipe()});
  eddy::stream out = p.take_stdout();
  eddy::stream err = p.take_stderr();
  EXPECT_EQ(p.stdout_fd(), -1);
  EXPECT_THROW(p.take_stdout(), std::logic_error);
  EXPECT_EQ(co_await out.read_line(), "one\n");
  EXPECT_EQ(co_await out.read_line(), "two\n");
  EXPECT_EQ(co_await out.read_line(), "");  // end of stream
  EXPECT_EQ(co_await err.read_line(), "oops\n");
  eddy::subprocess_result r = co_await p.communicate();  // nothing left to collect
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty());
  co_await out.close();
  co_await err.close();
}

TEST_P(Subprocess, StdoutAndStderrCanBeTakenAsEddyStreams) {
  run_on(GetParam(), as_stream());
}

task<void> options() {
  auto p = subprocess::spawn({.argv = {"sh", "-c", "echo \"$FOO\"; pwd"},
                              .env = std::vector<std::string>{"FOO=bar baz", "PATH=/usr/bin:/bin"},
                              .cwd = "/tmp",
                              .std_out = stdio::pipe()});
  eddy::subprocess_result r = co_await p.communicate();
  EXPECT_EQ(r.out, "bar baz\n/tmp\n");

  // stdout to an fd of ours; stderr to /dev/null.
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  auto q = subprocess::spawn({.argv = {"sh", "-c", "echo to-fd; echo lost >&2"},
                              .std_out = stdio::from_fd(fds[1]),
                              .std_err = stdio::null()});
  EXPECT_EQ(co_await q.wait(), 0);
  ::close(fds[1]);
  char buf[32] = {};
  EXPECT_EQ(::read(fds[0], buf, sizeof buf), 6);
  EXPECT_EQ(std::string(buf), "to-fd\n");
  ::close(fds[0]);

  // The child inherits only 0-2: ls shows 0, 1, 2 and its own directory fd.
  auto r2 = subprocess::spawn({.argv = {"ls", "/proc/self/fd"}, .std_out = stdio::pipe()});
  eddy::subprocess_result listing = co_await r2.communicate();
  EXPECT_EQ(listing.out, "0\n1\n2\n3\n");
}

TEST_P(Subprocess, EnvCwdAndStdioModesAreApplied) {
  run_on(GetParam(), options());
}

task<int> wait_one(subprocess* p) {
  co_return co_await p->wait();
}

task<void> many_at_once() {
  std::vector<subprocess> procs;
  for (int i = 0; i < 200; ++i) procs.push_back(subprocess::spawn({.argv = {"sleep", "0.2"}}));
  std::vector<eddy::join_handle<int>> waits;
  for (auto& p : procs) waits.push_back(eddy::spawn(wait_one(&p)));
  for (auto& w : waits) EXPECT_EQ(co_await w, 0);
  EXPECT_TRUE(no_children()) << "zombies left after 200 children exited together";
}

TEST_P(Subprocess, TwoHundredChildrenExitingAtOnceLeaveNoZombie) {
  run_on(GetParam(), many_at_once());
}

task<void> wait_is_cancel_safe() {
  auto p = subprocess::spawn({.argv = {"sleep", "30"}});
  bool timed_out = false;
  try {
    co_await eddy::with_timeout(20ms, p.wait());
  } catch (const eddy::timeout_error&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_FALSE(p.exit_code());
  p.kill();
  EXPECT_EQ(co_await p.wait(), -SIGKILL);
}

TEST_P(Subprocess, WaitIsCancelSafe) {
  run_on(GetParam(), wait_is_cancel_safe());
}

TEST(SubprocessDrop, DroppedHandlesNeverLeaveZombies) {
  ASSERT_TRUE(no_children());
  std::vector<int> watch;
  {
    // Still running when dropped: the background reaper collects them.
    for (int i = 0; i < 5; ++i) {
      auto p = subprocess::spawn({.argv = {"sleep", "0.05"}});
      watch.push_back(static_cast<int>(::syscall(SYS_pidfd_open, p.pid(), 0)));
    }
    // Killed on drop.
    auto k = subprocess::spawn({.argv = {"sleep", "30"}, .kill_on_drop = true});
    watch.push_back(static_cast<int>(::syscall(SYS_pidfd_open, k.pid(), 0)));
  }
  for (int fd : watch) {
    ASSERT_GE(fd, 0);
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 10000), 1) << "a dropped child did not exit";
    ::close(fd);
  }
  // Reaped by the background thread soon after exiting; generous deadline.
  for (int i = 0; i < 1000 && !no_children(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(no_children()) << "a dropped child was left a zombie";
}

TEST(SubprocessSpawn, BadOptionsAreRejectedClearly) {
  EXPECT_THROW(subprocess::spawn({}), std::invalid_argument);
  EXPECT_THROW(subprocess::spawn({.argv = {""}}), std::invalid_argument);
  EXPECT_THROW(subprocess::spawn({.argv = {"true"}, .env = std::vector<std::string>{"NOEQUALS"}}),
               std::invalid_argument);
  EXPECT_THROW(subprocess::spawn({.argv = {"true"}, .cwd = ""}), std::invalid_argument);
  EXPECT_THROW(subprocess::spawn({.argv = {"true"}, .std_out = stdio::from_fd(-1)}),
               std::invalid_argument);
  EXPECT_THROW(subprocess::spawn({.argv = {"true"}, .std_out = stdio::from_fd(9999)}),
               std::invalid_argument);
  try {
    subprocess::spawn({.argv = {"/nonexistent/program"}});
    ADD_FAILURE() << "spawned a program that does not exist";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/program"), std::string::npos);
  }
  try {
    subprocess::spawn({.argv = {"true"}, .cwd = "/nonexistent-dir"});
    ADD_FAILURE() << "spawned into a directory that does not exist";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }
  subprocess p = subprocess::spawn({.argv = {"true"}});
  EXPECT_THROW(p.kill(-1), std::invalid_argument);
  pollfd pf{p.pidfd(), POLLIN, 0};
  EXPECT_EQ(::poll(&pf, 1, 10000), 1);
  EXPECT_EQ(p.try_wait(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, Subprocess, ::testing::ValuesIn(eddy_test::backends()),
                         eddy_test::backend_name);

}  // namespace
