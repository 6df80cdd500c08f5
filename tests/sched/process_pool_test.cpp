// process_pool: round trips, remote errors, crashes and supervision, cancellation,
// timeouts, bad input, helpers dying with their parent. Real processes, real pidfds.
//
// This executable has its own main(): it must route helper mode (helpers are this
// binary re-executed) and a "pool parent" mode used by the parent-death test.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <eddy/io/fd.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/process_pool.hpp>
#include <map>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "process_test_support.hpp"

using namespace std::chrono_literals;
using eddy::task;

// ---- remote functions ------------------------------------------------------------

namespace {

int square(int x) {
  return x * x;
}
std::vector<char> echo_bytes(std::vector<char> v) {
  return v;
}
std::string shout(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
struct point {  // trivially copyable, no serialize(): the memcpy path
  double x, y;
  int tag;
};
point flip(point p) {
  return {p.y, p.x, p.tag + 1};
}
struct order {  // not trivially copyable: goes through its cereal serialize()
  std::string customer;
  std::map<std::string, int> items;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(customer, items);
  }
};
int count_items(order o) {
  int n = 0;
  for (const auto& [name, qty] : o.items) n += qty;
  return n + static_cast<int>(o.customer.size());
}
void nothing() {}
int throws_out_of_range(int) {
  throw std::out_of_range("index 7 past the end");
}
int throws_int(int) {
  throw 42;
}
int exits_with(int code) {
  ::_exit(code);
}
int segfaults(int) {
  ::signal(SIGSEGV, SIG_DFL);  // sanitizers catch SIGSEGV and abort instead
  ::raise(SIGSEGV);
  return 0;
}
int sleeps_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
long busy_sum(long n) {
  volatile long s = 0;
  for (long i = 0; i < n; ++i) s = s + i;
  return s;
}
std::size_t allocates(std::size_t bytes) {
  std::vector<char> v(bytes, 1);
  return v.size();
}
// Every fd this helper has open, except the directory being read.
std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR* d = ::opendir("/proc/self/fd");
  for (dirent* e; (e = ::readdir(d)) != nullptr;) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != ::dirfd(d)) fds.push_back(fd);
  }
  ::closedir(d);
  return fds;
}
int parent_pid() {
  return static_cast<int>(::getppid());
}
int own_pid_after_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return static_cast<int>(::getpid());
}

}  // namespace

EDDY_REMOTE(square);
EDDY_REMOTE(echo_bytes);
EDDY_REMOTE(shout);
EDDY_REMOTE(flip);
EDDY_REMOTE(count_items);
EDDY_REMOTE(nothing);
EDDY_REMOTE(throws_out_of_range);
EDDY_REMOTE(throws_int);
EDDY_REMOTE(exits_with);
EDDY_REMOTE(segfaults);
EDDY_REMOTE(sleeps_ms);
EDDY_REMOTE(busy_sum);
EDDY_REMOTE(allocates);
EDDY_REMOTE(open_fds);
EDDY_REMOTE(parent_pid);
EDDY_REMOTE(own_pid_after_ms);
EDDY_REMOTE_NAMED(square, "math.square");

namespace {

using eddy::process_pool;
using eddy::process_pool_options;
using eddy_test::backend_test;
using eddy_test::run_on;

class ProcessPool : public backend_test {};

// ---- round trips ------------------------------------------------------------

task<void> round_trips() {
  process_pool pool({.helpers = 1});
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{64}, std::size_t{65536},
                           std::size_t{1} << 20, std::size_t{16} << 20}) {
    std::vector<char> in(size);
    for (std::size_t i = 0; i < size; ++i) in[i] = static_cast<char>(i * 131 + 7);
    std::vector<char> out = co_await pool.call<echo_bytes>(in);
    EXPECT_EQ(out.size(), size);
    EXPECT_TRUE(out == in) << "payload of " << size << " bytes came back different";
  }
  co_await pool.shutdown();
}

TEST_P(ProcessPool, RoundTripsPayloadsFromZeroBytesTo16MiB) {
  run_on(GetParam(), round_trips());
}

task<void> typed_calls() {
  process_pool pool({.helpers = 2});
  EXPECT_EQ(co_await pool.call<square>(12), 144);
  EXPECT_EQ(co_await pool.call<int>("square", 5), 25);
  EXPECT_EQ(co_await pool.call<int>("math.square", 6), 36);
  EXPECT_EQ(co_await pool.call<shout>("quiet please"), "QUIET PLEASE");  // literal -> string
  EXPECT_EQ(co_await pool.call<std::string>("shout", "abc"), "ABC");
  point p = co_await pool.call<flip>(point{1.5, -2.0, 7});
  EXPECT_EQ(p.x, -2.0);
  EXPECT_EQ(p.y, 1.5);
  EXPECT_EQ(p.tag, 8);
  co_await pool.call<nothing>();
  co_await pool.call("nothing");
  order o;  // (a braced temporary inside co_await trips a GCC 12 coroutine bug)
  o.customer = "ann";
  o.items = {{"tea", 2}, {"cake", 5}};
  EXPECT_EQ(co_await pool.call<count_items>(o), 10);
  // Conversion to the parameter type happens in call<fn>: short -> int.
  EXPECT_EQ(co_await pool.call<square>(short{3}), 9);
  co_await pool.shutdown();
}

TEST_P(ProcessPool, CallsByFunctionAndByNameWithTypedArguments) {
  run_on(GetParam(), typed_calls());
}

// ---- call latency (process_pool_stats::queue_wait, run_time) ---------------------

task<void> latency_counted() {
  process_pool pool({.helpers = 1});
  co_await pool.call<square>(1);  // the helper is up: the three below queue behind each other
  std::vector<eddy::join_handle<int>> calls;
  for (int i = 0; i < 3; ++i)
    calls.push_back(eddy::spawn([](process_pool* p) -> task<int> { co_return co_await p->call<sleeps_ms>(20); }(&pool)));
  for (auto& c : calls) EXPECT_EQ(co_await c, 20);
  try {
    co_await pool.call<throws_out_of_range>(1);  // answered with an exception: counted too
  } catch (const eddy::remote_error&) {
  }
  const eddy::process_pool_stats s = pool.stats();
  constexpr std::uint64_t ms = 1'000'000;
  EXPECT_EQ(s.run_time.count, 5u);
  EXPECT_EQ(s.queue_wait.count, 5u);
  std::uint64_t in_buckets = 0;
  for (std::uint64_t b : s.run_time.hist) in_buckets += b;
  EXPECT_EQ(in_buckets, 5u);
  EXPECT_GE(s.run_time.sum_ns, 60 * ms);
  EXPECT_GE(s.run_time.max_ns, 20 * ms);
  EXPECT_GE(s.queue_wait.max_ns, 40 * ms);  // the third 20 ms call waited for two
  co_await pool.shutdown();
}

TEST_P(ProcessPool, CallLatencyIsCountedForAnsweredCalls) {
  run_on(GetParam(), latency_counted());
}

// ---- remote errors and bad input ------------------------------------------------

task<void> remote_exceptions() {
  process_pool pool({.helpers = 1});
  try {
    co_await pool.call<throws_out_of_range>(1);
    ADD_FAILURE() << "no exception";
  } catch (const eddy::remote_error& e) {
    EXPECT_EQ(e.type_name(), "std::out_of_range");
    EXPECT_EQ(e.message(), "index 7 past the end");
    EXPECT_EQ(e.function(), "throws_out_of_range");
  }
  try {
    co_await pool.call<throws_int>(1);
    ADD_FAILURE() << "no exception";
  } catch (const eddy::remote_error& e) {
    EXPECT_EQ(e.type_name(), "int");
  }
  // The helper survived both.
  EXPECT_EQ(pool.stats().helpers_died, 0u);
  EXPECT_EQ(co_await pool.call<square>(3), 9);
  co_await pool.shutdown();
}

TEST_P(ProcessPool, RemoteExceptionsCarryTypeAndMessageAndKeepTheHelper) {
  run_on(GetParam(), remote_exceptions());
}

task<void> bad_calls() {
  process_pool pool({.helpers = 1, .max_message_size = 4096});
  auto expect_call_error = [](const char* what, const std::exception_ptr& e, const char* needle) {
    try {
      std::rethrow_exception(e);
    } catch (const eddy::remote_call_error& err) {
      EXPECT_NE(std::string(err.what()).find(needle), std::string::npos)
          << what << ": " << err.what();
    } catch (const std::exception& err) {
      ADD_FAILURE() << what << ": wrong exception " << err.what();
    }
  };
  std::exception_ptr e;
  try {
    co_await pool.call<int>("no_such_function", 1);
  } catch (...) {
    e = std::current_exception();
  }
  expect_call_error("unknown name", e, "no remote function named 'no_such_function'");
  e = nullptr;
  try {
    co_await pool.call<int>("square", 1L);  // long, but square takes int
  } catch (...) {
    e = std::current_exception();
  }
  expect_call_error("wrong argument type", e, "has signature int (int), called as int (long)");
  e = nullptr;
  try {
    co_await pool.call<echo_bytes>(std::vector<char>(10000));
  } catch (...) {
    e = std::current_exception();
  }
  expect_call_error("oversized", e, "more than max_message_size");
  // A result larger than the limit is refused by the helper, which keeps running.
  e = nullptr;
  try {
    co_await pool.call<open_fds>();  // small: fine
    co_await pool.call<std::vector<char>>("echo_bytes", std::vector<char>(4000));
  } catch (...) {
    e = std::current_exception();
  }
  EXPECT_FALSE(e) << "a 4000-byte round trip under a 4096-byte limit failed";
  EXPECT_EQ(co_await pool.call<square>(4), 16);
  co_await pool.shutdown();
}

TEST_P(ProcessPool, BadInputGivesClearErrors) {
  run_on(GetParam(), bad_calls());
}

TEST(RemoteRegistry, UndecodableArgumentsAreRejectedNotMisread) {
  // What a helper does with a call whose bytes do not decode as the function's
  // parameters (a truncated or corrupted payload).
  const eddy::detail::remote_entry* e = eddy::detail::find_remote("shout");
  ASSERT_NE(e, nullptr);
  std::vector<char> good;
  eddy::detail::encode_args(good, std::string("hello"));
  std::vector<char> out;
  e->invoke(good, out);
  EXPECT_EQ(eddy::detail::decode_value<std::string>(out), "HELLO");
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, good.size() - 1}) {
    std::vector<char> bad(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
    try {
      e->invoke(bad, out);
      ADD_FAILURE() << "a payload cut to " << cut << " bytes was accepted";
    } catch (const eddy::remote_call_error& err) {
      EXPECT_NE(std::string(err.what()).find("cannot decode the arguments"), std::string::npos);
    }
  }
  std::vector<char> longer = good;
  longer.push_back('!');
  EXPECT_THROW(e->invoke(longer, out), eddy::remote_call_error);  // trailing bytes
  EXPECT_EQ(eddy::detail::find_remote("not registered"), nullptr);
}

// A type whose load() takes cereal's own archive only (not a template): it still
// decodes, through the plain archive.
struct legacy_pair {
  int a = 0;
  std::string b;
  void save(cereal::BinaryOutputArchive& ar) const { ar(a, b); }
  void load(cereal::BinaryInputArchive& ar) { ar(a, b); }
};

TEST(RemoteRegistry, LengthsInABodyAreCheckedBeforeAnythingIsAllocated) {
  using eddy::detail::decode_value;
  using eddy::detail::encode_value;
  // What honest bodies hold still decodes: empty and nested containers, strings.
  std::vector<char> body;
  using nested_t = std::map<std::string, std::vector<std::string>>;
  const nested_t nested{{"", {}}, {"k", {"", "v", std::string(300, 'x')}}};
  encode_value(body, nested);
  EXPECT_EQ(decode_value<nested_t>(body), nested);
  body.clear();
  encode_value(body, legacy_pair{7, "seven"});
  const legacy_pair back = decode_value<legacy_pair>(body);
  EXPECT_EQ(back.a, 7);
  EXPECT_EQ(back.b, "seven");
  // A length prefix larger than what follows: refused at once, saying so.
  auto forged = [](std::uint64_t claimed, std::string tail) {
    std::vector<char> b(sizeof claimed);
    std::memcpy(b.data(), &claimed, sizeof claimed);
    b.insert(b.end(), tail.begin(), tail.end());
    return b;
  };
  const std::uint64_t huge = std::uint64_t{1} << 33;  // 8 GiB
  auto refused = [](auto decode) -> std::string {
    try {
      decode();
    } catch (const cereal::Exception& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_NE(refused([&] { (void)decode_value<std::string>(forged(huge, "abc")); }).find("a length of 8589934592 where 3 bytes"), std::string::npos);
  EXPECT_NE(refused([&] { (void)decode_value<std::vector<int>>(forged(huge, "abcd")); }).find("a length of"), std::string::npos);
  EXPECT_NE(refused([&] { (void)decode_value<std::vector<std::string>>(forged(huge, "")); }).find("a length of"), std::string::npos);
  EXPECT_NE(refused([&] { (void)decode_value<std::map<int, int>>(forged(huge, "12345678")); }).find("a length of"), std::string::npos);
  EXPECT_NE(refused([&] { (void)decode_value<std::deque<char>>(forged(huge, "x")); }).find("a length of"), std::string::npos);
  // An inner length that lies, inside an honest outer one.
  std::vector<char> inner = forged(1, "");
  const std::vector<char> lie = forged(huge, "ab");
  inner.insert(inner.end(), lie.begin(), lie.end());
  EXPECT_NE(refused([&] { (void)decode_value<std::vector<std::string>>(inner); }).find("a length of"), std::string::npos);
  // The same for a call's arguments, in the process that runs it.
  const eddy::detail::remote_entry* e = eddy::detail::find_remote("shout");
  ASSERT_NE(e, nullptr);
  std::vector<char> out;
  try {
    e->invoke(forged(huge, "abc"), out);
    ADD_FAILURE() << "forged arguments decoded";
  } catch (const eddy::remote_call_error& err) {
    EXPECT_NE(std::string(err.what()).find("cannot decode the arguments: a length of"), std::string::npos) << err.what();
  }
}

TEST(ProcessPoolOptions, InvalidOptionsAreRejected) {
  eddy::loop l;
  auto rejects = [&l](process_pool_options o, const char* field) {
    try {
      process_pool p(l, o);
      ADD_FAILURE() << field << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  rejects({.helpers = 1000}, "helpers");
  rejects({.max_in_flight = 0}, "max_in_flight");
  rejects({.max_in_flight = 65}, "max_in_flight");
  rejects({.max_message_size = 10}, "max_message_size");
  rejects({.memory_limit = 1000}, "memory_limit");
  rejects({.max_start_failures = 0}, "max_start_failures");
  rejects({.start_timeout = 0ms}, "start_timeout");
  rejects({.helper_spin = 1s}, "helper_spin");
  l.close();
}

// ---- isolation and limits -----------------------------------------------------

task<void> isolation() {
  process_pool pool({.helpers = 1});
  std::vector<int> fds = co_await pool.call<open_fds>();
  std::sort(fds.begin(), fds.end());
  EXPECT_EQ(fds, (std::vector<int>{0, 1, 2, 3})) << "a helper inherited an fd it should not";
  EXPECT_EQ(co_await pool.call<parent_pid>(), static_cast<int>(::getpid()));
  co_await pool.shutdown();
}

TEST_P(ProcessPool, HelpersInheritOnlyTheirChannelAndStdio) {
  run_on(GetParam(), isolation());
}

task<void> memory_limit() {
  process_pool pool({.helpers = 1, .memory_limit = std::uint64_t{256} << 20});
  try {
    co_await pool.call<allocates>(std::size_t{1} << 30);
    ADD_FAILURE() << "1 GiB allocated under a 256 MiB limit";
  } catch (const eddy::remote_error& e) {
    EXPECT_EQ(e.type_name(), "std::bad_alloc");
  }
  EXPECT_EQ(co_await pool.call<allocates>(std::size_t{1} << 20), std::size_t{1} << 20);
  co_await pool.shutdown();
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

TEST_P(ProcessPool, MemoryLimitMakesLargeAllocationsFail) {
  if (sanitized)
    GTEST_SKIP() << "ASan/TSan reserve terabytes of shadow memory: RLIMIT_AS kills them";
  run_on(GetParam(), memory_limit());
}

// ---- crashes and supervision ----------------------------------------------------

task<void> crashes() {
  process_pool pool({.helpers = 1});
  const pid_t first = pool.helper_pids().at(0);
  try {
    co_await pool.call<exits_with>(3);
    ADD_FAILURE() << "no exception";
  } catch (const eddy::worker_crashed& e) {
    EXPECT_NE(std::string(e.what()).find("exited with status 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("exits_with"), std::string::npos) << e.what();
  }
  try {
    co_await pool.call<segfaults>(0);
    ADD_FAILURE() << "no exception";
  } catch (const eddy::worker_crashed& e) {
    EXPECT_NE(std::string(e.what()).find("signal 11 (SIGSEGV)"), std::string::npos) << e.what();
  }
  EXPECT_EQ(co_await pool.call<square>(9), 81);  // replaced
  EXPECT_NE(pool.helper_pids().at(0), first);
  EXPECT_EQ(pool.stats().helpers_died, 2u);
  EXPECT_EQ(pool.stats().helpers_started, 3u);
  ::unsetenv("EDDY_TEST_HELPER_FAILS");
  co_await pool.shutdown();
}

TEST_P(ProcessPool, CrashedHelperFailsItsCallAndIsReplaced) {
  run_on(GetParam(), crashes());
}

// Calls that may land on a helper while it is being killed.
task<int> one_call(process_pool* pool, int i, int* ok, int* crashed) {
  try {
    int r = co_await pool->call<sleeps_ms>(i % 3);
    EXPECT_EQ(r, i % 3);
    ++*ok;
  } catch (const eddy::worker_crashed&) {
    ++*crashed;
  }
  co_return 0;
}

task<void> kill_storm() {
  process_pool pool({.helpers = 2, .max_in_flight = 2});
  int ok = 0, crashed = 0;
  for (int round = 0; round < 100; ++round) {
    std::vector<eddy::join_handle<int>> calls;
    for (int i = 0; i < 4; ++i) calls.push_back(eddy::spawn(one_call(&pool, i, &ok, &crashed)));
    co_await eddy::sleep_for(std::chrono::microseconds(300 * (round % 4)));
    std::vector<pid_t> pids = pool.helper_pids();
    if (!pids.empty()) ::kill(pids[static_cast<std::size_t>(round) % pids.size()], SIGKILL);
    for (auto& c : calls) co_await c;
  }
  EXPECT_EQ(ok + crashed, 400);
  EXPECT_GT(ok, 0);
  EXPECT_GE(pool.stats().helpers_died, 1u);
  // The pool is whole again.
  EXPECT_EQ(co_await pool.call<square>(2), 4);
  co_await pool.shutdown();
}

TEST_P(ProcessPool, HelperKilled100TimesWhileCallsAreInFlightNoCallHangs) {
  run_on(GetParam(), kill_storm());
}

task<void> start_failures() {
  // Helpers of this binary exit at once with status 5 while this variable is set
  // (see main()); the pool must give up after 3 tries, not loop.
  ::setenv("EDDY_TEST_HELPER_FAILS", "1", 1);
  process_pool pool({.helpers = 1, .max_start_failures = 3});
  try {
    co_await pool.call<square>(2);
    ADD_FAILURE() << "call succeeded with failing helpers";
  } catch (const eddy::worker_crashed& e) {
    EXPECT_NE(std::string(e.what()).find("exited with status 5 before it was ready"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("3 start failure(s)"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pool.stats().helpers_started, 3u);
  try {
    co_await pool.call<square>(2);  // still refused, still no respawn loop
    ADD_FAILURE();
  } catch (const eddy::worker_crashed&) {
  }
  EXPECT_EQ(pool.stats().helpers_started, 3u);
  ::unsetenv("EDDY_TEST_HELPER_FAILS");
  co_await pool.shutdown();
}

TEST_P(ProcessPool, RepeatedStartFailuresAreReportedNotRetriedForever) {
  run_on(GetParam(), start_failures());
}

// Regression: stats() and helper_pids() showed a killed helper alive (died 0, its
// pid listed) until the loop had turned once more.
task<void> killed_helper_seen_at_once() {
  process_pool pool({.helpers = 1});
  EXPECT_EQ(co_await pool.call<square>(3), 9);
  const pid_t pid = pool.helper_pids().at(0);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  EXPECT_GE(pidfd, 0);
  ::kill(pid, SIGKILL);
  pollfd p{pidfd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 5000), 1);  // dead now; the loop has not run since
  ::close(pidfd);
  EXPECT_EQ(pool.stats().helpers_died, 1u);
  const std::vector<pid_t> pids = pool.helper_pids();
  EXPECT_EQ(std::count(pids.begin(), pids.end(), pid), 0);
  EXPECT_EQ(co_await pool.call<square>(4), 16);  // served by the replacement
  EXPECT_EQ(pool.stats().helpers_died, 1u);      // counted once
  co_await pool.shutdown();
}

TEST_P(ProcessPool, AKilledHelperIsSeenDeadWithoutALoopTurn) {
  run_on(GetParam(), killed_helper_seen_at_once());
}

// ---- cancellation and timeouts ---------------------------------------------------

task<void> timeout_kills() {
  process_pool pool({.helpers = 1});
  const pid_t before = pool.helper_pids().at(0);
  EXPECT_EQ(co_await pool.call<square>(1), 1);
  bool timed_out = false;
  try {
    co_await eddy::with_timeout(50ms, pool.call<sleeps_ms>(60000));
  } catch (const eddy::timeout_error&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(co_await pool.call<square>(5), 25);  // served by the replacement
  EXPECT_NE(pool.helper_pids().at(0), before);
  EXPECT_EQ(pool.stats().helpers_died, 1u);
  co_await pool.shutdown();
}

TEST_P(ProcessPool, TimeoutOfARunningCallKillsAndReplacesItsHelper) {
  run_on(GetParam(), timeout_kills());
}

task<int> long_call(process_pool* pool) {
  co_return co_await pool->call<sleeps_ms>(200);
}
task<int> short_call(process_pool* pool) {
  co_return co_await pool->call<square>(7);
}

task<void> cancel_queued() {
  process_pool pool({.helpers = 1, .max_in_flight = 1});
  co_await pool.call<square>(1);  // helper ready
  auto running = eddy::spawn(long_call(&pool));
  co_await eddy::sleep_for(20ms);
  auto queued = eddy::spawn(short_call(&pool));
  co_await eddy::sleep_for(5ms);
  EXPECT_EQ(pool.stats().queued, 1u);  // backpressure: one in flight per helper
  queued.cancel();
  bool cancelled = false;
  try {
    co_await queued;
  } catch (const eddy::cancelled_error&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(co_await running, 200);  // untouched
  EXPECT_EQ(pool.stats().helpers_died, 0u);
  co_await pool.shutdown();
}

TEST_P(ProcessPool, CancellingAQueuedCallLeavesTheHelperAlone) {
  run_on(GetParam(), cancel_queued());
}

task<void> queued_behind_crash() {
  // Two calls on one helper; the first crashes it. The second never started, so it
  // is re-sent to the replacement and succeeds.
  process_pool pool({.helpers = 1, .max_in_flight = 2});
  co_await pool.call<square>(1);
  auto crash = eddy::spawn(
      [](process_pool* p) -> task<int> { co_return co_await p->call<exits_with>(9); }(&pool));
  auto behind = eddy::spawn(short_call(&pool));
  bool crashed = false;
  try {
    co_await crash;
  } catch (const eddy::worker_crashed&) {
    crashed = true;
  }
  EXPECT_TRUE(crashed);
  EXPECT_EQ(co_await behind, 49);
  co_await pool.shutdown();
}

task<std::size_t> big_call(process_pool* pool) {
  std::vector<char> v = co_await pool->call<echo_bytes>(std::vector<char>(16 << 20, 'b'));
  co_return v.size();
}

task<void> cancel_half_written() {
  // The helper is busy, so a 16 MiB call behind it is stuck half written in the
  // socket. Cancelling it must leave the stream well-formed: the helper later reads
  // the whole frame, its reply is dropped, and the next call gets its own answer.
  process_pool pool({.helpers = 1, .max_in_flight = 2});
  co_await pool.call<square>(1);
  auto running = eddy::spawn(long_call(&pool));
  co_await eddy::sleep_for(10ms);
  auto big = eddy::spawn(big_call(&pool));
  co_await eddy::sleep_for(10ms);
  EXPECT_EQ(pool.stats().in_flight, 2u);
  big.cancel();
  bool cancelled = false;
  try {
    co_await big;
  } catch (const eddy::cancelled_error&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(co_await running, 200);
  EXPECT_EQ(co_await pool.call<square>(11), 121);
  EXPECT_EQ(pool.stats().helpers_died, 0u);
  co_await pool.shutdown();
}

TEST_P(ProcessPool, CancellingAHalfWrittenCallKeepsTheStreamIntact) {
  run_on(GetParam(), cancel_half_written());
}

TEST_P(ProcessPool, CallsQueuedBehindACrashAreRetried) {
  run_on(GetParam(), queued_behind_crash());
}

// ---- throughput uses both helpers ------------------------------------------------

task<long> sum_call(process_pool* pool) {
  co_return co_await pool->call<busy_sum>(1000);
}

task<void> spread() {
  process_pool pool({.helpers = 2});
  std::vector<eddy::join_handle<long>> calls;
  for (int i = 0; i < 50; ++i) calls.push_back(eddy::spawn(sum_call(&pool)));
  for (auto& c : calls) EXPECT_EQ(co_await c, 499500);
  co_await pool.shutdown();
}

TEST_P(ProcessPool, ManyConcurrentCallsAllComplete) {
  run_on(GetParam(), spread());
}

task<int> pid_call(process_pool* pool) {
  co_return co_await pool->call<own_pid_after_ms>(30);
}

task<void> both_helpers_work() {
  process_pool pool({.helpers = 2, .max_in_flight = 1});
  co_await pool.call<square>(1);
  co_await pool.call<square>(1);
  std::vector<pid_t> helpers = pool.helper_pids();
  std::vector<eddy::join_handle<int>> calls;
  for (int i = 0; i < 4; ++i) calls.push_back(eddy::spawn(pid_call(&pool)));
  std::vector<int> seen;
  for (auto& c : calls) seen.push_back(co_await c);
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  EXPECT_EQ(seen.size(), 2u) << "concurrent calls did not use both helpers";
  for (int pid : seen) EXPECT_NE(std::find(helpers.begin(), helpers.end(), pid), helpers.end());
  co_await pool.shutdown();
}

TEST_P(ProcessPool, ConcurrentCallsAreSpreadOverTheHelpers) {
  run_on(GetParam(), both_helpers_work());
}

task<void> shutdown_fails_later_calls() {
  process_pool pool({.helpers = 1});
  EXPECT_EQ(co_await pool.call<square>(3), 9);
  co_await pool.shutdown();
  EXPECT_TRUE(pool.helper_pids().empty());
  bool refused = false;
  try {
    co_await pool.call<square>(3);
  } catch (const eddy::worker_crashed& e) {
    refused = std::string(e.what()).find("shut down") != std::string::npos;
  }
  EXPECT_TRUE(refused);
}

task<int> crashed_or_value(process_pool* pool) {
  try {
    co_return co_await pool->call<sleeps_ms>(60000);
  } catch (const eddy::worker_crashed&) {
    co_return -1;
  }
}

task<void> dropped_pool() {
  eddy::join_handle<int> busy;
  {
    process_pool pool({.helpers = 2});
    EXPECT_EQ(co_await pool.call<square>(2), 4);
    busy = eddy::spawn(crashed_or_value(&pool));
    co_await eddy::sleep_for(20ms);
  }                              // dropped with one helper busy and one idle: no shutdown()
  EXPECT_EQ(co_await busy, -1);  // the busy helper was killed
}

TEST_P(ProcessPool, DroppedPoolLeavesNoHelperOnceTheLoopCloses) {
  run_on(GetParam(), dropped_pool());
  siginfo_t si{};
  EXPECT_TRUE(::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 && errno == ECHILD)
      << "a helper was left behind (alive or zombie)";
}

TEST_P(ProcessPool, ShutdownReapsHelpersAndRefusesLaterCalls) {
  run_on(GetParam(), shutdown_fails_later_calls());
}

// ---- helpers die with their parent ---------------------------------------------

TEST(ProcessPoolParent, HelpersExitWhenTheParentIsKilled) {
  // A child of ours plays the pool's parent: it starts 2 helpers, prints their pids
  // and waits. We SIGKILL it and watch the helpers through pidfds.
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  pid_t parent = eddy_test::spawn_self({"--pool-parent"}, out[1]);
  ::close(out[1]);
  std::string line;
  char c;
  while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(out[0]);
  std::vector<pid_t> helpers;
  for (std::size_t at = 0; at < line.size();) {
    std::size_t sp = line.find(' ', at);
    helpers.push_back(static_cast<pid_t>(std::stol(line.substr(at, sp - at))));
    at = sp == std::string::npos ? line.size() : sp + 1;
  }
  ASSERT_EQ(helpers.size(), 2u) << "pool parent said: " << line;
  std::vector<int> pidfds;
  for (pid_t h : helpers) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, h, 0));
    ASSERT_GE(fd, 0) << "helper " << h << " is not running";
    pidfds.push_back(fd);
  }
  ASSERT_EQ(::kill(parent, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(parent, &status, 0), parent);
  // A generous deadline: a helper still alive after 10 s did not follow its parent.
  for (int fd : pidfds) {
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 10000), 1) << "a helper outlived its killed parent";
    ::close(fd);
  }
}

// ---- a program that forgot to route helper mode ----------------------------------

TEST(ProcessPoolParent, PoolInsideAnUnroutedHelperFailsLoudly) {
  ::setenv("EDDY_PROCESS_HELPER", "1", 1);
  eddy::loop l;
  try {
    process_pool p(l, {.helpers = 1});
    ADD_FAILURE() << "a pool was created in helper mode";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("helper_main_if_requested"), std::string::npos);
  }
  ::unsetenv("EDDY_PROCESS_HELPER");
  l.close();
}

INSTANTIATE_TEST_SUITE_P(Backends, ProcessPool, ::testing::ValuesIn(eddy_test::backends()),
                         eddy_test::backend_name);

// The "pool parent" of HelpersExitWhenTheParentIsKilled.
int pool_parent_main() {
  eddy::loop l;
  l.run([]() -> task<void> {
    process_pool pool({.helpers = 2});
    co_await pool.call<square>(1);
    co_await pool.call<square>(2);
    std::string line;
    for (pid_t p : pool.helper_pids()) line += std::to_string(p) + " ";
    line.back() = '\n';
    (void)!::write(1, line.data(), line.size());
    co_await eddy::sleep_for(std::chrono::hours(1));
  }());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--eddy-process-helper") == 0 &&
      std::getenv("EDDY_TEST_HELPER_FAILS") != nullptr)
    return 5;  // simulates a helper that cannot start
  eddy::process_pool::helper_main_if_requested(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "--pool-parent") == 0) return pool_parent_main();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
