// signal_set: signals delivered as values through a signalfd, on every backend.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/signal_set.hpp>

#include "process_test_support.hpp"

using namespace std::chrono_literals;
using eddy::signal_set;
using eddy::task;
using eddy_test::run_on;

namespace {

class SignalSet : public eddy_test::backend_test {};

bool blocked(int sig) {
  sigset_t cur;
  pthread_sigmask(SIG_SETMASK, nullptr, &cur);
  return sigismember(&cur, sig) == 1;
}

task<void> receives() {
  signal_set set{SIGUSR1, SIGUSR2};
  ::kill(::getpid(), SIGUSR2);
  EXPECT_EQ(co_await set.wait(), SIGUSR2);
  ::kill(::getpid(), SIGUSR1);
  EXPECT_EQ(co_await set.wait(), SIGUSR1);
  EXPECT_FALSE(set.try_take());
}

TEST_P(SignalSet, DeliversSignalsSentToTheProcess) {
  run_on(GetParam(), receives());
}

task<void> raise_later() {
  co_await eddy::sleep_for(20ms);
  ::kill(::getpid(), SIGUSR1);
}

task<void> waits() {
  signal_set set{SIGUSR1};
  auto sender = eddy::spawn(raise_later());
  EXPECT_EQ(co_await set.wait(), SIGUSR1);  // suspended until it arrives
  co_await sender;
}

TEST_P(SignalSet, WaitSuspendsUntilASignalArrives) {
  run_on(GetParam(), waits());
}

task<void> cancel_safe() {
  signal_set set{SIGUSR1};
  bool timed_out = false;
  try {
    co_await eddy::with_timeout(10ms, set.wait());
  } catch (const eddy::timeout_error&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  ::kill(::getpid(), SIGUSR1);
  EXPECT_EQ(co_await set.wait(), SIGUSR1);  // the cancelled wait consumed nothing
}

TEST_P(SignalSet, ACancelledWaitConsumesNoSignal) {
  run_on(GetParam(), cancel_safe());
}

TEST(SignalSetMask, DestructorRestoresTheThreadsMask) {
  ASSERT_FALSE(blocked(SIGUSR1));
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &usr2, nullptr);  // blocked before: must stay blocked
  {
    signal_set set{SIGUSR1, SIGUSR2};
    EXPECT_TRUE(blocked(SIGUSR1));
    EXPECT_TRUE(blocked(SIGUSR2));
  }
  EXPECT_FALSE(blocked(SIGUSR1));
  EXPECT_TRUE(blocked(SIGUSR2));
  pthread_sigmask(SIG_UNBLOCK, &usr2, nullptr);
}

TEST(SignalSetMask, InvalidSignalsAreRejected) {
  EXPECT_THROW(signal_set({}), std::invalid_argument);
  EXPECT_THROW(signal_set({0}), std::invalid_argument);
  EXPECT_THROW(signal_set({-3}), std::invalid_argument);
  EXPECT_THROW(signal_set({SIGRTMAX + 1}), std::invalid_argument);
  EXPECT_THROW(signal_set({SIGKILL}), std::invalid_argument);
  EXPECT_THROW(signal_set({SIGSTOP}), std::invalid_argument);
  EXPECT_THROW(signal_set({SIGUSR1, SIGSEGV}), std::invalid_argument);
  EXPECT_FALSE(blocked(SIGUSR1)) << "a rejected set left a signal blocked";
}

INSTANTIATE_TEST_SUITE_P(Backends, SignalSet, ::testing::ValuesIn(eddy_test::backends()),
                         eddy_test::backend_name);

}  // namespace
