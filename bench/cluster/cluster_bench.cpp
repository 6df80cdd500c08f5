// cluster_bench: one measurement per run, printed as one line of key=value pairs;
// bench/cluster/compare.py alternates the runs (eddy cluster_pool, process_pool,
// Celery) and takes medians.
//
//   cluster_bench --what rt   --pool cluster|process [--redis URL] [--n N] [--size B]
//       round trip of one call at a time: p50_us p99_us
//   cluster_bench --what tput --pool cluster|process [--redis URL] [--n N] [--size B]
//                 [--window W]
//       throughput with W calls in flight from one caller loop: calls_per_s
//       (--concurrency C: the cluster worker's threads, default 1)
//   cluster_bench --what cpu  --redis URL --workers K [--n N] [--job-size S]
//       CPU-bound jobs over K worker processes (concurrency 1 each): jobs_per_s
//   cluster_bench --worker URL CONCURRENCY      (what --what cpu starts)
//
// For rt and tput the caller starts its own workers: one cluster worker process
// (concurrency 1) or a process_pool of one helper, so both run the same function
// (sample.echo) in one other process.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <eddy/eddy.hpp>
#include <eddy/sched/cluster_pool.hpp>
#include <eddy/sched/process_pool.hpp>
#include <string>
#include <vector>


extern char** environ;

// The functions both pools run: an echo (round trip, throughput) and a CPU-bound
// one (scaling): the total Collatz steps of every n in [first, first + count).
namespace cluster_sample {
std::string echo(std::string s) { return s; }
std::uint64_t collatz_steps(std::uint64_t first, std::uint32_t count) {
  std::uint64_t total = 0;
  for (std::uint64_t n = first; n < first + count; ++n)
    for (std::uint64_t x = n; x > 1; ++total) x = (x & 1) ? 3 * x + 1 : x / 2;
  return total;
}
}  // namespace cluster_sample
EDDY_REMOTE_NAMED(cluster_sample::echo, "bench.echo");
EDDY_REMOTE_NAMED(cluster_sample::collatz_steps, "bench.collatz_steps");

namespace {

using clock_type = std::chrono::steady_clock;

struct config {
  std::string what = "rt", pool = "cluster", url;
  unsigned n = 2000, size = 64, window = 256, workers = 1, job_size = 200000, concurrency = 1;
};

pid_t spawn_worker(const std::string& url, unsigned concurrency) {
  std::string self = "/proc/self/exe", a1 = "--worker", c = std::to_string(concurrency);
  std::string u = url;
  char* argv[] = {self.data(), a1.data(), u.data(), c.data(), nullptr};
  // EDDY_BENCH_WORKER_BACKEND sets the worker's backend apart from the caller's.
  std::vector<std::string> env_store;
  std::vector<char*> env;
  const char* wb = std::getenv("EDDY_BENCH_WORKER_BACKEND");
  for (char** e = environ; *e; ++e)
    if (!wb || std::strncmp(*e, "EDDY_BACKEND=", 13) != 0) env_store.emplace_back(*e);
  if (wb) env_store.push_back(std::string("EDDY_BACKEND=") + wb);
  for (auto& e : env_store) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, env.data()) != 0) std::exit(3);
  return pid;
}

void stop_worker(pid_t pid) {
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
}

template <class Call>
eddy::task<void> round_trips(const config& c, Call call) {
  std::string payload(c.size, 'x');
  for (int i = 0; i < 200; ++i) co_await call(payload);  // warm up
  std::vector<double> us;
  us.reserve(c.n);
  for (unsigned i = 0; i < c.n; ++i) {
    const auto t0 = clock_type::now();
    std::string r = co_await call(payload);
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    if (r.size() != payload.size()) std::abort();
  }
  std::sort(us.begin(), us.end());
  std::printf("pool=%s what=rt size=%u n=%u p50_us=%.1f p99_us=%.1f\n", c.pool.c_str(), c.size,
              c.n, us[us.size() / 2], us[us.size() * 99 / 100]);
}

template <class Call>
eddy::task<void> one_of_window(Call* call, std::string* payload, unsigned* next, unsigned n) {
  while (*next < n) {
    ++*next;
    std::string r = co_await (*call)(*payload);
    if (r.size() != payload->size()) std::abort();
  }
}

template <class Call>
eddy::task<void> throughput(const config& c, Call call) {
  std::string payload(c.size, 'x');
  for (int i = 0; i < 200; ++i) co_await call(payload);
  unsigned next = 0;
  const auto t0 = clock_type::now();
  std::vector<eddy::join_handle<void>> hs;
  for (unsigned w = 0; w < c.window; ++w)
    hs.push_back(eddy::spawn(one_of_window(&call, &payload, &next, c.n)));
  for (auto& h : hs) co_await h;
  const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::printf("pool=%s what=tput size=%u n=%u window=%u concurrency=%u calls_per_s=%.0f\n",
              c.pool.c_str(), c.size, c.n, c.window, c.concurrency, c.n / s);
}

eddy::task<int> run_cluster(config c) {
  pid_t w = spawn_worker(c.url, c.concurrency);
  {
    eddy::cluster_pool pool(c.url);
    co_await pool.connected();
    auto call = [&pool](const std::string& s) { return pool.call<cluster_sample::echo>(s); };
    if (c.what == "rt")
      co_await round_trips(c, call);
    else
      co_await throughput(c, call);
    co_await pool.shutdown();
  }
  stop_worker(w);
  co_return 0;
}

eddy::task<int> run_process(config c) {
  eddy::process_pool pool({.helpers = 1, .max_in_flight = 64});
  auto call = [&pool](const std::string& s) { return pool.call<cluster_sample::echo>(s); };
  if (c.what == "rt")
    co_await round_trips(c, call);
  else
    co_await throughput(c, call);
  co_await pool.shutdown();
  co_return 0;
}

eddy::task<void> cpu_one(eddy::cluster_pool* pool, std::uint64_t first, std::uint32_t size) {
  std::uint64_t r = co_await pool->call<cluster_sample::collatz_steps>(first, size);
  if (r == 0) std::abort();
}

eddy::task<int> run_cpu(config c) {
  std::vector<pid_t> ws;
  for (unsigned i = 0; i < c.workers; ++i) ws.push_back(spawn_worker(c.url, 1));
  {
    eddy::cluster_pool pool(c.url);
    co_await pool.connected();
    for (unsigned i = 0; i < 2 * c.workers; ++i)  // every worker up and warm
      co_await cpu_one(&pool, 1, 1000);
    const auto t0 = clock_type::now();
    std::vector<eddy::join_handle<void>> hs;
    for (unsigned i = 0; i < c.n; ++i)
      hs.push_back(eddy::spawn(cpu_one(&pool, 1 + std::uint64_t{i} * c.job_size, c.job_size)));
    for (auto& h : hs) co_await h;
    const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::printf("pool=cluster what=cpu workers=%u n=%u job_size=%u jobs_per_s=%.2f\n", c.workers,
                c.n, c.job_size, c.n / s);
    co_await pool.shutdown();
  }
  for (pid_t w : ws) stop_worker(w);
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  eddy::process_pool::helper_main_if_requested(argc, argv);
  if (argc >= 4 && std::strcmp(argv[1], "--worker") == 0) {
    eddy::cluster_worker_options o;
    o.concurrency = static_cast<unsigned>(std::atoi(argv[3]));
    return eddy::cluster_worker_main(argv[2], o);
  }
  config c;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    auto num = [&] {
      char* end = nullptr;
      unsigned long x = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end || x == 0 || x > 100'000'000) {
        std::fprintf(stderr, "cluster_bench: %s takes a number 1..1e8\n", k.c_str());
        std::exit(2);
      }
      return static_cast<unsigned>(x);
    };
    if (k == "--what") c.what = v;
    else if (k == "--pool") c.pool = v;
    else if (k == "--redis") c.url = v;
    else if (k == "--n") c.n = num();
    else if (k == "--size") c.size = num();
    else if (k == "--window") c.window = num();
    else if (k == "--workers") c.workers = num();
    else if (k == "--job-size") c.job_size = num();
    else if (k == "--concurrency") c.concurrency = num();
    else {
      std::fprintf(stderr, "cluster_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if ((c.pool == "cluster" || c.what == "cpu") && c.url.empty()) {
    std::fprintf(stderr, "cluster_bench: --redis URL is required\n");
    return 2;
  }
  if (c.what == "cpu") return eddy::run(run_cpu(c));
  return eddy::run(c.pool == "process" ? run_process(c) : run_cluster(c));
}
