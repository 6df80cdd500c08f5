// cluster_pool: calls through a real redis-server (started by the tests in a temp
// dir) to workers that are real separate processes (this binary re-executed with
// --cluster-worker). Covers docs/RELIABILITY.md row 22: a worker killed mid-job, a worker
// hung past claim_after, the broker restarted, a wrong password, a poison job.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/cluster_pool.hpp>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "process_test_support.hpp"
#include "redis_support.hpp"

using namespace std::chrono_literals;
using eddy::task;

// ---- remote functions ------------------------------------------------------------

namespace {

int square(int x) { return x * x; }
long add(long a, long b) { return a + b; }
std::vector<char> echo_bytes(std::vector<char> v) { return v; }
std::string shout(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
struct point {  // trivially copyable: the memcpy path
  double x, y;
  int tag;
};
point flip(point p) { return {p.y, p.x, p.tag + 1}; }
struct order {  // through its cereal serialize()
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
std::optional<std::tuple<int, std::string>> maybe_pair(bool yes) {
  if (!yes) return std::nullopt;
  return std::tuple<int, std::string>{7, "seven"};
}
void nothing() {}
int throws_out_of_range(int) { throw std::out_of_range("index 7 past the end"); }
// Appends its pid to `marker` (so the test sees it started), sleeps, returns the pid.
int marked_sleep(std::string marker, int ms) {
  {
    std::ofstream f(marker, std::ios::app);
    f << ::getpid() << "\n";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ::getpid();
}
int slow_echo(int i, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return i;
}
int dies(int code) { ::_exit(code); }

}  // namespace

EDDY_REMOTE(square);
EDDY_REMOTE(add);
EDDY_REMOTE(echo_bytes);
EDDY_REMOTE(shout);
EDDY_REMOTE(flip);
EDDY_REMOTE(count_items);
EDDY_REMOTE(maybe_pair);
EDDY_REMOTE(nothing);
EDDY_REMOTE(throws_out_of_range);
EDDY_REMOTE(marked_sleep);
EDDY_REMOTE(slow_echo);
EDDY_REMOTE(dies);

namespace {

using eddy_test::redis_server;
using eddy_test::run_on;

// A worker process: this binary in --cluster-worker mode.
class worker_proc {
 public:
  worker_proc(const std::string& url, unsigned concurrency = 1, int claim_ms = 5000,
              unsigned max_deliveries = 3, int heartbeat_ms = 0) {
    pid_ = eddy_test::spawn_self({"--cluster-worker", url, std::to_string(concurrency),
                                  std::to_string(claim_ms), std::to_string(max_deliveries),
                                  std::to_string(heartbeat_ms)},
                                 1);
  }
  ~worker_proc() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  worker_proc(const worker_proc&) = delete;
  worker_proc& operator=(const worker_proc&) = delete;
  pid_t pid() const { return pid_; }
  void signal(int sig) { ::kill(pid_, sig); }
  int wait() {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return st;
  }
  void forget() { pid_ = -1; }  // reaped by the test itself

 private:
  pid_t pid_ = -1;
};

// One command with binary-safe arguments; the caller frees the reply.
redisReply* redis_command(redisContext* c, const std::vector<std::string>& cmd) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : cmd) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
}

// Inspection through hiredis's blocking client (the test's own view of Redis).
long long redis_int(const redis_server& r, const std::vector<std::string>& cmd) {
  redisContext* c = redisConnectUnix(r.socket_path().c_str());
  if (c == nullptr || c->err) throw std::runtime_error("cannot connect to the test's Redis");
  redisReply* rep = redis_command(c, cmd);
  long long v = -1;
  if (rep && rep->type == REDIS_REPLY_INTEGER) v = rep->integer;
  if (rep && rep->type == REDIS_REPLY_ARRAY) v = static_cast<long long>(rep->elements);
  freeReplyObject(rep);
  redisFree(c);
  return v;
}

// Built outside the coroutines: GCC 12 miscompiles ("array used as initializer")
// nested braced lists in a coroutine body.
order sample_order() { return order{"ann", {{"a", 2}, {"b", 3}}}; }
long long jobs_len(const redis_server& r) { return redis_int(r, {"XLEN", "eddy:jobs"}); }

std::vector<int> read_pids(const std::string& path) {
  std::vector<int> v;
  std::ifstream f(path);
  for (int p; f >> p;) v.push_back(p);
  return v;
}

// A child's wait status once it exits, polled for up to 5 s without blocking the
// loop (-1 if it is still running then; the caller's worker_proc then kills it).
task<int> exit_status(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) co_return st;
    co_await eddy::sleep_for(10ms);
  }
  co_return -1;
}

task<void> wait_for_file(std::string path) {
  for (int i = 0; i < 1000; ++i) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && st.st_size > 0) co_return;
    co_await eddy::sleep_for(10ms);
  }
  throw std::runtime_error("timed out waiting for " + path);
}

#define REQUIRE_REDIS()                                                                  \
  if (!eddy_test::redis_server_binary())                                                 \
  GTEST_SKIP() << "redis-server is not installed (scripts/lib/setup.sh installs it): " \
                  "cluster_pool's tests need a real Redis"

class ClusterPool : public eddy_test::backend_test {};

// ---- calls ------------------------------------------------------------------------

task<void> every_kind(std::string url) {
  eddy::cluster_pool pool(url);
  co_await pool.connected();
  EXPECT_EQ(co_await pool.call<square>(7), 49);
  EXPECT_EQ(co_await pool.call<add>(40, 2), 42);
  std::vector<char> big(256 * 1024);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  EXPECT_EQ(co_await pool.call<echo_bytes>(big), big);
  EXPECT_EQ(co_await pool.call<echo_bytes>(std::vector<char>{}), std::vector<char>{});
  EXPECT_EQ(co_await pool.call<std::string>("shout", "hello"), "HELLO");
  point p = co_await pool.call<flip>(point{1.5, -2.5, 41});
  EXPECT_EQ(p.x, -2.5);
  EXPECT_EQ(p.y, 1.5);
  EXPECT_EQ(p.tag, 42);
  EXPECT_EQ(co_await pool.call<count_items>(sample_order()), 8);
  auto m = co_await pool.call<maybe_pair>(true);
  EXPECT_TRUE(m.has_value());
  if (m) {
    EXPECT_EQ(std::get<1>(*m), "seven");
  }
  EXPECT_FALSE((co_await pool.call<maybe_pair>(false)).has_value());
  co_await pool.call<nothing>();
  try {
    co_await pool.call<throws_out_of_range>(1);
    ADD_FAILURE() << "no remote_error";
  } catch (const eddy::remote_error& e) {
    EXPECT_EQ(e.type_name(), "std::out_of_range");
    EXPECT_EQ(e.message(), "index 7 past the end");
    EXPECT_EQ(e.function(), "throws_out_of_range");
  }
  // Caller-side checks: unknown name, wrong signature, oversized arguments.
  EXPECT_THROW(co_await pool.call<int>("no_such_function", 1), eddy::remote_call_error);
  EXPECT_THROW(co_await pool.call<int>("square", std::string("x")), eddy::remote_call_error);
  EXPECT_EQ(pool.stats().duplicates_dropped, 0u);
  EXPECT_EQ(pool.stats().results, 11u);
  co_await pool.shutdown();
}

TEST_P(ClusterPool, RoundTripsEveryArgumentKindByFunctionAndByName) {
  REQUIRE_REDIS();
  redis_server redis;
  worker_proc w(redis.unix_url());
  run_on(GetParam(), every_kind(redis.unix_url()));
}

task<void> many_jobs(std::string url, int n) {
  eddy::cluster_pool pool(url);
  std::vector<eddy::join_handle<long>> hs;
  hs.reserve(n);
  for (int i = 0; i < n; ++i) hs.push_back(eddy::spawn(pool.call<add>(i, 1000000L * i)));
  long bad = 0;
  for (int i = 0; i < n; ++i)
    if (co_await hs[i] != i + 1000000L * i) ++bad;
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(pool.stats().results, static_cast<std::uint64_t>(n));
  EXPECT_EQ(pool.stats().duplicates_dropped, 0u);
  co_await pool.shutdown();
}

// The row is 10,000 jobs (EDDY_CLUSTER_JOBS=10000, 5-12 s per backend on the
// loaded 2-core VM); the suite runs 600 to stay inside CI's time budget.
TEST_P(ClusterPool, ThousandsOfSmallJobsOverThreeWorkersEachResultOnceAndRight) {
  REQUIRE_REDIS();
  const char* env = std::getenv("EDDY_CLUSTER_JOBS");
  const int n = env ? std::max(1, std::atoi(env)) : 600;
  redis_server redis;
  worker_proc a(redis.unix_url(), 2), b(redis.unix_url(), 2), c(redis.unix_url(), 2);
  run_on(GetParam(), many_jobs(redis.unix_url(), n));
  EXPECT_EQ(redis_int(redis, {"XLEN", "eddy:jobs"}), 0);  // every job acknowledged and deleted
}

// What a worker answers to a raw job (the test plays a caller built from other code).
std::map<std::string, std::string> raw_answer(const redis_server& redis, const std::string& fn,
                                              const std::string& sig, const std::string& job) {
  redis_int(redis, {"XADD", "eddy:jobs", "*", "c", "t:res", "j", job, "f", fn, "s", sig, "a", ""});
  redisContext* c = redisConnectUnix(redis.socket_path().c_str());
  std::map<std::string, std::string> f;
  for (int tries = 0; tries < 100 && f["j"] != job; ++tries) {
    auto* rep = static_cast<redisReply*>(redisCommand(c, "XREAD BLOCK 100 STREAMS t:res 0-0"));
    if (rep && rep->type == REDIS_REPLY_ARRAY) {
      const redisReply* entries = rep->element[0]->element[1];
      for (std::size_t e = 0; e < entries->elements; ++e) {
        const redisReply* fields = entries->element[e]->element[1];
        std::map<std::string, std::string> one;
        for (std::size_t i = 0; i + 1 < fields->elements; i += 2)
          one[fields->element[i]->str] =
              std::string(fields->element[i + 1]->str, fields->element[i + 1]->len);
        if (one["j"] == job) f = one;
      }
    }
    freeReplyObject(rep);
  }
  redisFree(c);
  return f;
}

TEST(ClusterWorker, RefusesAnUnknownFunctionOrADifferentSignatureWithAClearAnswer) {
  REQUIRE_REDIS();
  redis_server redis;
  worker_proc w(redis.unix_url());
  auto unknown = raw_answer(redis, "no_such", "0", "1");
  EXPECT_EQ(unknown["k"], "n");
  EXPECT_NE(unknown["b"].find("no remote function named 'no_such'"), std::string::npos)
      << unknown["b"];
  // A caller whose square() has other parameter types: same name, other hash.
  auto mismatch = raw_answer(redis, "square", "12345", "2");
  EXPECT_EQ(mismatch["k"], "n");
  EXPECT_NE(mismatch["b"].find("'square' has signature int (int), called with different types"),
            std::string::npos)
      << mismatch["b"];
}

// A body that claims a string of 8 GiB and holds three bytes: what a corrupt or
// lying answer looks like to cereal's length-prefixed format.
std::string forged_length_body() {
  std::string b(8, '\0');
  const std::uint64_t claimed = std::uint64_t{1} << 33;
  std::memcpy(b.data(), &claimed, sizeof claimed);  // cereal's binary format: little-endian
  return b + "abc";
}

// Plays a worker that lies: answers the first job it sees with `kind` and `body`.
void answer_first_job(std::string socket_path, std::string kind, std::string body) {
  redisContext* c = redisConnectUnix(socket_path.c_str());
  if (c == nullptr || c->err) return;
  for (int tries = 0; tries < 200; ++tries) {
    auto* rep = static_cast<redisReply*>(redisCommand(c, "XREAD BLOCK 50 STREAMS eddy:jobs 0-0"));
    std::map<std::string, std::string> f;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
      const redisReply* fields = rep->element[0]->element[1]->element[0]->element[1];
      for (std::size_t i = 0; i + 1 < fields->elements; i += 2)
        f[fields->element[i]->str] = std::string(fields->element[i + 1]->str, fields->element[i + 1]->len);
    }
    freeReplyObject(rep);
    if (f.count("c") && f.count("j")) {
      freeReplyObject(redis_command(c, {"XADD", f["c"], "*", "j", f["j"], "k", kind, "b", body}));
      break;
    }
  }
  redisFree(c);
}

task<void> call_answered_by_a_liar(std::string url, std::string socket_path) {
  eddy::cluster_pool pool(url);
  co_await pool.connected();
  // A result whose length prefix is larger than the body: refused before any
  // allocation of that size, as a remote_call_error that says why.
  std::thread liar(answer_first_job, socket_path, std::string("r"), forged_length_body());
  try {
    (void)co_await pool.call<shout>(std::string("x"));
    ADD_FAILURE() << "a forged result decoded";
  } catch (const eddy::remote_call_error& e) {
    EXPECT_NE(std::string(e.what()).find("a length of 8589934592"), std::string::npos) << e.what();
  }
  liar.join();
  co_await pool.shutdown();
}

// Before the length check, cereal resized the string to 8 GiB first (seconds of
// zero-filling, or an abort under ASan) and only then saw the short body.
TEST_P(ClusterPool, AResultThatLiesAboutItsLengthIsRefusedBeforeAnythingIsAllocated) {
  REQUIRE_REDIS();
  redis_server redis;
  run_on(GetParam(), call_answered_by_a_liar(redis.unix_url(), redis.socket_path()));
}

// ---- RELIABILITY row 22 ------------------------------------------------------------

task<void> killed_mid_job(std::string url, std::string marker, worker_proc* a,
                          std::unique_ptr<worker_proc>* b) {
  eddy::cluster_pool pool(url);
  auto h = eddy::spawn(pool.call<marked_sleep>(marker, 250));
  co_await wait_for_file(marker);
  const pid_t first = a->pid();
  a->signal(SIGKILL);
  a->wait();
  *b = std::make_unique<worker_proc>(url, 1, 300);
  const int pid = co_await h;
  EXPECT_EQ(pid, (*b)->pid()) << "the job completed on the second worker";
  const auto pids = read_pids(marker);
  EXPECT_EQ(pids.size(), 2u);
  if (!pids.empty()) {
    EXPECT_EQ(pids[0], first);
  }
  EXPECT_EQ(pool.stats().results, 1u);
  co_await pool.shutdown();
}

TEST_P(ClusterPool, WorkerKilledMidJobItsJobCompletesOnAnotherAndTheCallerSeesOneResult) {
  REQUIRE_REDIS();
  redis_server redis;
  const std::string marker = redis.dir() + "/started";
  worker_proc a(redis.unix_url(), 1, 300);
  std::unique_ptr<worker_proc> b;
  run_on(GetParam(), killed_mid_job(redis.unix_url(), marker, &a, &b));
  EXPECT_EQ(redis_int(redis, {"XLEN", "eddy:jobs"}), 0);
  EXPECT_EQ(redis_int(redis, {"XPENDING", "eddy:jobs", "eddy:workers", "-", "+", "10"}), 0);
}

task<void> hung_worker(std::string url, std::string marker, worker_proc* a,
                       std::unique_ptr<worker_proc>* b) {
  eddy::cluster_pool pool(url);
  auto h = eddy::spawn(pool.call<marked_sleep>(marker, 350));
  co_await wait_for_file(marker);
  a->signal(SIGSTOP);  // hung: no heartbeat, no answer
  *b = std::make_unique<worker_proc>(url, 1, 300, 3, 100);
  const int pid = co_await h;
  EXPECT_EQ(pid, (*b)->pid());
  a->signal(SIGCONT);  // wakes, finishes its run, answers a second time
  for (int i = 0; i < 500 && pool.stats().duplicates_dropped == 0; ++i)
    co_await eddy::sleep_for(10ms);
  EXPECT_EQ(pool.stats().duplicates_dropped, 1u) << "the hung worker's late answer is dropped";
  EXPECT_EQ(pool.stats().results, 1u);
  EXPECT_EQ(read_pids(marker).size(), 2u);
  co_await pool.shutdown();
}

TEST_P(ClusterPool, WorkerHungPastClaimAfterIsReplacedAndItsLateAnswerDropped) {
  REQUIRE_REDIS();
  redis_server redis;
  const std::string marker = redis.dir() + "/started";
  worker_proc a(redis.unix_url(), 1, 300, 3, 100);
  std::unique_ptr<worker_proc> b;
  run_on(GetParam(), hung_worker(redis.unix_url(), marker, &a, &b));
}

// A concurrency-1 worker runs the function on its loop thread; its heartbeats then
// come from a side thread (inline_heartbeat). Without them the second worker, idle
// and claiming every 100 ms, would take the job after claim_after (300 ms).
task<void> long_job_kept(std::string url, std::string marker) {
  eddy::cluster_pool pool(url);
  EXPECT_GT(co_await pool.call<marked_sleep>(marker, 1000), 0);
  co_await eddy::sleep_for(200ms);  // a second run would have answered by now
  EXPECT_EQ(read_pids(marker).size(), 1u) << "a live worker's long job was claimed by another";
  EXPECT_EQ(pool.stats().duplicates_dropped, 0u);
  co_await pool.shutdown();
}

TEST_P(ClusterPool, LongJobOnALiveWorkerIsNotClaimedByAnother) {
  REQUIRE_REDIS();
  redis_server redis;
  worker_proc a(redis.unix_url(), 1, 300, 3, 100);
  worker_proc b(redis.unix_url(), 1, 300, 3, 100);
  run_on(GetParam(), long_job_kept(redis.unix_url(), redis.dir() + "/started"));
}

// A concurrency-1 worker runs its job on the loop thread, so a SIGTERM that comes
// during the job is read only after it. The answer used to leave together with the
// next XREADGROUP, and the worker ran one more job before it stopped (with a long
// job, past an orchestrator's grace period).
task<void> stopped_mid_job(std::string url, std::string dir, worker_proc* a,
                           std::unique_ptr<worker_proc>* b) {
  eddy::cluster_pool pool(url);
  auto first = eddy::spawn(pool.call<marked_sleep>(dir + "/first", 300));
  co_await wait_for_file(dir + "/first");
  auto second = eddy::spawn(pool.call<marked_sleep>(dir + "/second", 10));
  co_await eddy::sleep_for(50ms);  // on the broker, behind the first
  const pid_t apid = a->pid();
  a->signal(SIGTERM);
  EXPECT_EQ(co_await first, apid) << "the running job is finished and answered";
  const int status = co_await exit_status(apid);
  if (status != -1) a->forget();  // reaped here; a live one is killed by worker_proc
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_TRUE(read_pids(dir + "/second").empty()) << "the stopping worker took a new job";
  *b = std::make_unique<worker_proc>(url);
  EXPECT_EQ(co_await second, (*b)->pid()) << "the next worker runs it";
  co_await pool.shutdown();
}

TEST_P(ClusterPool, WorkerStoppedDuringAJobFinishesItAndTakesNoOther) {
  REQUIRE_REDIS();
  redis_server redis;
  worker_proc a(redis.unix_url());
  std::unique_ptr<worker_proc> b;
  run_on(GetParam(), stopped_mid_job(redis.unix_url(), redis.dir(), &a, &b));
}

// With more than one slot a worker waits in a blocking XREADGROUP (up to 1 s) when
// the signal comes; a job it delivers then is handed back to the group, not run,
// and the next worker's XAUTOCLAIM takes it at once.
task<void> handed_back(std::string url, redis_server* redis, worker_proc* a,
                       std::unique_ptr<worker_proc>* b) {
  eddy::cluster_pool pool(url);
  EXPECT_EQ(co_await pool.call<square>(3), 9);  // a is up; its next XREADGROUP blocks
  co_await eddy::sleep_for(50ms);
  const pid_t apid = a->pid();
  a->signal(SIGTERM);
  co_await eddy::sleep_for(20ms);
  const std::string late = redis->dir() + "/late";
  auto h = eddy::spawn(pool.call<marked_sleep>(late, 10));
  const int status = co_await exit_status(apid);
  if (status != -1) a->forget();  // reaped here; a live one is killed by worker_proc
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_TRUE(read_pids(late).empty()) << "the stopping worker ran a job delivered after the signal";
  EXPECT_EQ(redis_int(*redis, {"XPENDING", "eddy:jobs", "eddy:workers", "-", "+", "10", "#handed-back"}), 1)
      << "the job waits, handed back";
  *b = std::make_unique<worker_proc>(url, 1, 300, 3, 100);
  EXPECT_EQ(co_await h, (*b)->pid()) << "the next worker claims and runs it";
  EXPECT_EQ(read_pids(late).size(), 1u);
  co_await pool.shutdown();
}

TEST_P(ClusterPool, JobDeliveredAfterTheSignalIsHandedBackAndRunByTheNextWorker) {
  REQUIRE_REDIS();
  redis_server redis;
  worker_proc a(redis.unix_url(), 2, 300, 3, 100);
  std::unique_ptr<worker_proc> b;
  run_on(GetParam(), handed_back(redis.unix_url(), &redis, &a, &b));
}

task<void> broker_restart(std::string url, redis_server* redis, int sig) {
  eddy::cluster_pool pool(url, {.broker_timeout = 10s});
  co_await pool.connected();
  constexpr int n = 40;
  std::vector<eddy::join_handle<int>> hs;
  for (int i = 0; i < n; ++i) hs.push_back(eddy::spawn(pool.call<slow_echo>(i, 20)));
  co_await eddy::sleep_for(60ms);
  // SIGTERM: Redis flushes and exits; SIGKILL: it dies (appendfsync always has
  // every acknowledged write on disk). Then a new server on the same files.
  redis->stop(sig);
  redis->start();
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    try {
      if (co_await hs[i] == i) ++ok;
    } catch (const eddy::broker_error& e) {
      ADD_FAILURE() << "call " << i << ": " << e.what();
    }
  }
  EXPECT_EQ(ok, n) << "every call ends with its result";
  EXPECT_GE(pool.stats().reconnects, 1u);
  EXPECT_EQ(co_await pool.call<square>(9), 81) << "calls work after the restart";
  co_await pool.shutdown();
}

TEST_P(ClusterPool, BrokerRestartedWithAofDuringARunLosesNoCall) {
  REQUIRE_REDIS();
  redis_server redis;
  worker_proc w(redis.unix_url(), 4);
  run_on(GetParam(), broker_restart(redis.unix_url(), &redis, SIGTERM));
}

TEST_P(ClusterPool, BrokerKilledAndRestartedFromItsAofLosesNoCall) {
  REQUIRE_REDIS();
  redis_server redis;
  worker_proc w(redis.unix_url(), 4);
  run_on(GetParam(), broker_restart(redis.unix_url(), &redis, SIGKILL));
}

task<void> wrong_password(std::string bad_url, std::string good_url) {
  {
    eddy::cluster_pool pool(bad_url, {.broker_timeout = 5s});
    try {
      co_await pool.call<square>(3);
      ADD_FAILURE() << "a wrong password let a call through";
    } catch (const eddy::broker_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("refused the login"), std::string::npos) << what;
      EXPECT_NE(what.find("WRONGPASS"), std::string::npos) << what;
      EXPECT_NE(what.find("127.0.0.1"), std::string::npos) << what;
      EXPECT_EQ(what.find("nope"), std::string::npos) << "the password is not in the message";
    }
    co_await pool.shutdown();
  }
  eddy::cluster_pool pool(good_url);
  EXPECT_EQ(co_await pool.call<square>(12), 144);
  co_await pool.shutdown();
}

TEST_P(ClusterPool, WrongPasswordFailsCallsWithTheServersRefusalAndTheRightOneWorksOverTcp) {
  REQUIRE_REDIS();
  redis_server redis({.tcp = true, .password = "s3cret", .maxmemory = {}});
  worker_proc bad(redis.tcp_url(":nope"));
  EXPECT_EQ(WEXITSTATUS(bad.wait()), 1) << "a worker refused its login exits with 1";
  worker_proc w(redis.tcp_url("default:s3cret"));
  run_on(GetParam(), wrong_password(redis.tcp_url(":nope"), redis.tcp_url("default:s3cret")));
}

task<void> poison(std::string url) {
  eddy::cluster_pool pool(url);
  try {
    co_await pool.call<dies>(3);
    ADD_FAILURE() << "a poison job returned";
  } catch (const eddy::dead_letter_error& e) {
    EXPECT_NE(std::string(e.what()).find("dead-letter stream eddy:dead"), std::string::npos)
        << e.what();
  }
  co_await pool.shutdown();
}

TEST_P(ClusterPool, PoisonJobReachesTheDeadLetterStreamAndItsCallerGetsAClearError) {
  REQUIRE_REDIS();
  redis_server redis;
  // max_deliveries 2: two workers die running it; the third dead-letters it.
  worker_proc a(redis.unix_url(), 1, 200, 2), b(redis.unix_url(), 1, 200, 2),
      c(redis.unix_url(), 1, 200, 2);
  run_on(GetParam(), poison(redis.unix_url()));
  EXPECT_EQ(redis_int(redis, {"XLEN", "eddy:dead"}), 1);
  EXPECT_EQ(redis_int(redis, {"XLEN", "eddy:jobs"}), 0);
}

// ---- cancellation --------------------------------------------------------------------

task<void> cancel_before(std::string url, std::string marker, redis_server* redis,
                         std::unique_ptr<worker_proc>* w) {
  eddy::cluster_pool pool(url);
  co_await pool.connected();
  EXPECT_THROW(co_await eddy::with_timeout(100ms, pool.call<marked_sleep>(marker, 1)),
               eddy::timeout_error);
  // The XDEL is on its way: give the loop turns to write it (redis_int blocks).
  long long left = -1;
  for (int i = 0; i < 200 && (left = jobs_len(*redis)) != 0; ++i) co_await eddy::sleep_for(5ms);
  EXPECT_EQ(left, 0) << "the cancelled job was deleted";
  *w = std::make_unique<worker_proc>(url);
  EXPECT_EQ(co_await pool.call<square>(5), 25);
  EXPECT_TRUE(read_pids(marker).empty()) << "a worker ran a job cancelled before it took it";
  co_await pool.shutdown();
}

TEST_P(ClusterPool, CancelledBeforeAWorkerTakesItTheJobNeverRuns) {
  REQUIRE_REDIS();
  redis_server redis;
  std::unique_ptr<worker_proc> w;
  run_on(GetParam(), cancel_before(redis.unix_url(), redis.dir() + "/started", &redis, &w));
}

task<void> cancel_after(std::string url, std::string marker) {
  eddy::cluster_pool pool(url);
  auto h = eddy::spawn(pool.call<marked_sleep>(marker, 300));
  co_await wait_for_file(marker);
  h.cancel();
  EXPECT_THROW(co_await h, eddy::cancelled_error);
  for (int i = 0; i < 300 && pool.stats().duplicates_dropped == 0; ++i)
    co_await eddy::sleep_for(10ms);
  EXPECT_EQ(pool.stats().duplicates_dropped, 1u) << "the started job ran on; its answer dropped";
  EXPECT_EQ(co_await pool.call<square>(6), 36);
  co_await pool.shutdown();
}

TEST_P(ClusterPool, CancelledAfterAWorkerTookItTheJobRunsOnAndItsResultIsDropped) {
  REQUIRE_REDIS();
  redis_server redis;
  worker_proc w(redis.unix_url());
  run_on(GetParam(), cancel_after(redis.unix_url(), redis.dir() + "/started"));
}

// ---- broker trouble and bad input ------------------------------------------------------

task<void> unreachable(std::string url) {
  eddy::cluster_pool pool(url, {.broker_timeout = 200ms});
  try {
    co_await pool.call<square>(2);
    ADD_FAILURE() << "a call went through to no server";
  } catch (const eddy::broker_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-eddy-dir/redis.sock"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(co_await pool.call<square>(2), eddy::broker_error) << "fails fast while down";
  co_await pool.shutdown();
}

TEST_P(ClusterPool, UnreachableBrokerFailsCallsAfterBrokerTimeoutNamingTheServer) {
  run_on(GetParam(), unreachable("unix:/nonexistent-eddy-dir/redis.sock"));
}

task<void> out_of_memory(std::string url) {
  eddy::cluster_pool pool(url);
  co_await pool.connected();
  std::vector<char> big(1 << 20, 'x');
  try {
    // Bounded so a Redis that took the job (no worker here) fails the test, not hangs it.
    co_await eddy::with_timeout(5s, pool.call<echo_bytes>(big));
    ADD_FAILURE() << "Redis took a job past maxmemory";
  } catch (const eddy::broker_error& e) {
    EXPECT_NE(std::string(e.what()).find("OOM"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("redis.sock"), std::string::npos) << e.what();
  }
  co_await pool.shutdown();
}

TEST_P(ClusterPool, BrokerOutOfMemoryFailsTheCallWithRedisError) {
  REQUIRE_REDIS();
  redis_server redis({.tcp = false, .password = {}, .maxmemory = "1mb"});
  run_on(GetParam(), out_of_memory(redis.unix_url()));
}

TEST(ClusterPoolOptions, BadUrlsAndOptionsAreRefusedWithTheirName) {
  eddy::loop l;
  auto bad = [&](std::string url, const char* needle, eddy::cluster_pool_options o = {}) {
    try {
      eddy::cluster_pool p(l, url, o);
      ADD_FAILURE() << url << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  bad("http://x:1", "unknown scheme");
  bad("redis://", "no host");
  bad("redis://h:99999", "port");
  bad("redis://h:0", "port 0");
  bad("redis://h:6379/x", "db");
  bad("redis://[::1:6379", "unclosed");
  bad("unix:relative.sock", "absolute");
  bad("unix:/" + std::string(200, 'a'), "socket path longer");
  bad("unix:/x.sock?color=red", "unknown query key");
  bad("redis://a:b%zz@h", "%-escape");
  bad("redis://h", "ns", {.ns = "bad ns"});
  bad("redis://h", "max_in_flight", {.max_in_flight = 0});
  bad("redis://h", "broker_timeout", {.broker_timeout = 1ms});
  bad("redis://h", "max_message_size", {.max_message_size = 10});
  {
    // Parses; destroyed before the loop runs, so it never tries to connect.
    eddy::cluster_pool ok(l, "redis://user:p%40ss@[::1]:7000/3", {});
    eddy::cluster_pool ok_unix(l, "unix:/run/redis.sock?db=2&user=u&password=p%20w", {});
  }
  l.close();
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(backends, ClusterPool, ::testing::ValuesIn(eddy_test::backends()),
                         eddy_test::backend_name);

int main(int argc, char** argv) {
  if (argc >= 7 && std::strcmp(argv[1], "--cluster-worker") == 0) {
    // A test killed mid-run must not leave its workers behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    eddy::cluster_worker_options o;
    o.concurrency = static_cast<unsigned>(std::atoi(argv[3]));
    o.claim_after = std::chrono::milliseconds(std::atoi(argv[4]));
    o.max_deliveries = static_cast<unsigned>(std::atoi(argv[5]));
    o.heartbeat = std::chrono::milliseconds(std::atoi(argv[6]));
    o.verbose = std::getenv("EDDY_TEST_VERBOSE") != nullptr;
    return eddy::cluster_worker_main(argv[2], o);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
