// cluster_worker: runs the sample's functions (samples/cluster/jobs.cpp) for any
// caller that reaches the same Redis.
//
//   cluster_worker --redis redis://[user:password@]host:port/db | unix:/path
//                  [--concurrency N] [--claim-after-ms MS] [--max-deliveries N]
//                  [--ns PREFIX] [--verbose]
//
// SIGTERM or Ctrl-C: finishes the running jobs, acknowledges them, leaves the group.
#include <cstdlib>
#include <cstring>
#include <eddy/eddy.hpp>
#include <eddy/sched/cluster_pool.hpp>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  std::string url;
  eddy::cluster_worker_options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "cluster_worker: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    auto number = [&](unsigned long max) {
      std::string v = value();
      char* end = nullptr;
      unsigned long n = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n > max) {
        std::cerr << "cluster_worker: " << a << " takes a number up to " << max << "\n";
        std::exit(2);
      }
      return n;
    };
    if (a == "--redis") url = value();
    else if (a == "--concurrency") o.concurrency = static_cast<unsigned>(number(1024));
    else if (a == "--claim-after-ms") o.claim_after = std::chrono::milliseconds(number(86400000));
    else if (a == "--max-deliveries") o.max_deliveries = static_cast<unsigned>(number(1000));
    else if (a == "--ns") o.ns = value();
    else if (a == "--verbose") o.verbose = true;
    else {
      std::cerr << "usage: cluster_worker --redis URL [--concurrency N] [--claim-after-ms MS] "
                   "[--max-deliveries N] [--ns PREFIX] [--verbose]\n";
      return 2;
    }
  }
  if (url.empty()) {
    std::cerr << "cluster_worker: --redis URL is required\n";
    return 2;
  }
  return eddy::cluster_worker_main(url, o);
}
