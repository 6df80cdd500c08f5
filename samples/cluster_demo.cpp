// cluster_demo: submits N CPU-bound jobs through Redis to whatever cluster_workers
// listen there, checks every result against a local computation, and prints
// "N results ok" (or what went wrong, with exit status 1).
//
//   cluster_demo --redis URL [--jobs N] [--size K] [--timeout-s S]
#include <cstdlib>
#include <eddy/eddy.hpp>
#include <eddy/sched/cluster_pool.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "cluster/jobs.hpp"

namespace {

struct config {
  std::string url;
  unsigned jobs = 100;
  std::uint32_t size = 20000;  // numbers per job: a few ms of CPU
  unsigned timeout_s = 60;
};

eddy::task<int> run(config c) {
  eddy::cluster_pool pool(c.url);
  try {
    co_await pool.connected();
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    co_return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<eddy::join_handle<std::uint64_t>> calls;
  for (unsigned i = 0; i < c.jobs; ++i)
    calls.push_back(eddy::spawn(eddy::with_timeout(
        std::chrono::seconds(c.timeout_s),
        pool.call<cluster_sample::collatz_steps>(std::uint64_t{1} + std::uint64_t{i} * c.size, c.size))));
  unsigned ok = 0, wrong = 0, failed = 0;
  for (unsigned i = 0; i < c.jobs; ++i) {
    try {
      const std::uint64_t got = co_await calls[i];
      if (got == cluster_sample::collatz_steps_local(1 + std::uint64_t{i} * c.size, c.size)) ++ok;
      else ++wrong;
    } catch (const std::exception& e) {
      if (failed++ == 0) std::cerr << "job " << i << ": " << e.what() << "\n";
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  co_await pool.shutdown();
  if (ok == c.jobs) {
    std::cout << ok << " results ok (" << s << " s)\n";
    co_return 0;
  }
  std::cout << ok << " results ok, " << wrong << " wrong, " << failed << " failed\n";
  co_return 1;
}

}  // namespace

int main(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "usage: cluster_demo --redis URL [--jobs N] [--size K] [--timeout-s S]\n";
      return 2;
    }
    std::string v = argv[++i];
    char* end = nullptr;
    const unsigned long n = std::strtoul(v.c_str(), &end, 10);
    const bool num = !v.empty() && *end == '\0';
    if (a == "--redis") c.url = v;
    else if (a == "--jobs" && num && n >= 1 && n <= 10'000'000) c.jobs = static_cast<unsigned>(n);
    else if (a == "--size" && num && n >= 1 && n <= 100'000'000) c.size = static_cast<std::uint32_t>(n);
    else if (a == "--timeout-s" && num && n >= 1 && n <= 86400) c.timeout_s = static_cast<unsigned>(n);
    else {
      std::cerr << "cluster_demo: bad option " << a << " " << v << "\n";
      return 2;
    }
  }
  if (c.url.empty()) {
    std::cerr << "cluster_demo: --redis URL is required\n";
    return 2;
  }
  try {
    return eddy::run(run(c));
  } catch (const std::exception& e) {
    std::cerr << "cluster_demo: " << e.what() << "\n";
    return 2;
  }
}
