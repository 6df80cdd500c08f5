// echo_load: the load generator every echo server in BENCHMARKS.md is measured with.
// Deliberately does not use eddy, so it is the same yardstick for eddy, Boost.Asio,
// uvloop, Node.js and the hand-written servers. Two engines drive the connections:
// epoll (default; epoll_engine.cpp) and io_uring (--engine uring; uring_engine.cpp,
// liburing directly), one loop per thread either way.
//
// Model (engine_common.hpp): each connection's byte stream is a deterministic pattern,
// so an echo can be verified by position without keeping a copy of what was sent.
// Message j of a connection is the stream bytes [j*size, (j+1)*size); it completes when
// that many bytes have been read back. Up to --pipeline messages are outstanding.
// This file: resolving HOST, starting the threads, and the report.
#include <netdb.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine_common.hpp"

namespace echo_load {
namespace {

bool resolve(Plan& plan) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(plan.opt.port);
  int rc = getaddrinfo(plan.opt.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    std::fprintf(stderr, "echo_load: HOST '%s' does not resolve: %s\n", plan.opt.host.c_str(),
                 rc ? gai_strerror(rc) : "no address");
    return false;
  }
  // The first answer is the one getaddrinfo prefers (RFC 6724 order); every connection
  // uses it so a run never measures two address families at once.
  std::memcpy(&plan.addr, res->ai_addr, res->ai_addrlen);
  plan.addrlen = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

void raise_fd_limit(std::uint64_t needed) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= needed) return;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < needed)
    std::fprintf(stderr,
                 "echo_load: warning: need %" PRIu64
                 " file descriptors but the hard limit is "
                 "%llu; connections beyond it will fail and count as connect errors\n",
                 needed, static_cast<unsigned long long>(rl.rlim_max));
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    std::fprintf(stderr, "echo_load: warning: cannot raise RLIMIT_NOFILE to %llu: %s\n",
                 static_cast<unsigned long long>(rl.rlim_max), std::strerror(errno));
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

void report(const Plan& plan, std::uint32_t threads, const Result& r, std::uint64_t late) {
  const Options& o = plan.opt;
  const double rps = static_cast<double>(r.requests) / o.secs;
  const double mibs = rps * o.size / (1024.0 * 1024.0);
  auto us = [](const LatencyHistogram& h, double q) {
    return static_cast<double>(q >= 1 ? h.max() : h.percentile(q)) / 1000.0;
  };
  const LatencyHistogram& h = r.hist;
  const Errors& e = r.errors;
  if (o.json) {
    std::printf(
        "{\"host\":\"%s\",\"port\":%u,\"engine\":\"%s\",\"conns\":%u,\"size\":%u,\"pipeline\":%u,"
        "\"threads\":%u,\"secs\":%g,\"warmup\":%g,\"rate\":%g,\"requests\":%" PRIu64
        ",\"req_per_s\":%.1f,\"mib_per_s_each_way\":%.3f,",
        json_escape(o.host).c_str(), o.port, engine_name(o.engine), o.conns, o.size, o.pipeline, threads, o.secs, o.warmup,
        o.rate, r.requests, rps, mibs);
    std::printf(
        "\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
        "\"mean\":%.1f},",
        us(h, 0.5), us(h, 0.99), us(h, 0.999), us(h, 1), h.mean() / 1000.0);
    if (o.rate > 0)
      std::printf("\"send_lag_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},", us(r.lag, 0.5),
                  us(r.lag, 0.99), us(r.lag, 1));
    std::printf("\"late\":%" PRIu64 ",", late);
    std::printf("\"errors\":{\"total\":%" PRIu64 ",\"connect\":%" PRIu64 ",\"reset\":%" PRIu64
                ",\"eof\":%" PRIu64 ",\"mismatch\":%" PRIu64 "},\"connected\":%u,\"alive\":%u}\n",
                e.total(), e.connect, e.reset, e.eof, e.mismatch, r.connected, r.alive);
    return;
  }
  std::printf("req/s=%.0f MiB/s=%.2f(each way) p50=%.1fus p99=%.1fus p99.9=%.1fus max=%.1fus ", rps,
              mibs, us(h, 0.5), us(h, 0.99), us(h, 0.999), us(h, 1));
  if (o.rate > 0) std::printf("send_lag_p99=%.1fus ", us(r.lag, 0.99));
  std::printf("late=%" PRIu64 " ", late);
  std::printf("errors=%" PRIu64 "(connect=%" PRIu64 " reset=%" PRIu64 " eof=%" PRIu64
              " mismatch=%" PRIu64
              ") conns=%u alive=%u size=%u pipeline=%u threads=%u rate=%g "
              "secs=%g engine=%s\n",
              e.total(), e.connect, e.reset, e.eof, e.mismatch, o.conns, r.alive, o.size,
              o.pipeline, threads, o.rate, o.secs, engine_name(o.engine));
}

}  // namespace
}  // namespace echo_load

int main(int argc, char** argv) {
  using namespace echo_load;
  ParseResult pr = parse_args(argc, argv);
  if (pr.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!pr.error.empty()) {
    std::fprintf(stderr, "echo_load: %s\nTry 'echo_load --help'.\n", pr.error.c_str());
    return 2;
  }
  Plan plan;
  plan.opt = pr.opt;
  if (!resolve(plan)) return 2;
  if (plan.opt.engine == Engine::Uring) {
#ifdef ECHO_LOAD_HAVE_URING
    if (std::string why = uring_unavailable(); !why.empty()) {
      std::fprintf(stderr, "echo_load: --engine uring: io_uring is not usable here: %s\n",
                   why.c_str());
      return 2;
    }
#else
    std::fprintf(stderr,
                 "echo_load: --engine uring: this echo_load was built without liburing; "
                 "use --engine epoll or rebuild with liburing-dev installed\n");
    return 2;
#endif
  }
  signal(SIGPIPE, SIG_IGN);  // MSG_NOSIGNAL covers send(); this covers anything else

  const std::uint32_t threads = std::min(plan.opt.threads, plan.opt.conns);
  if (threads < plan.opt.threads)
    std::fprintf(stderr, "echo_load: note: --threads %u capped at --conns %u\n", plan.opt.threads,
                 plan.opt.conns);
  // Sockets plus one epoll fd or ring per thread plus stdio and slack.
  raise_fd_limit(std::uint64_t{plan.opt.conns} + threads + 16);

  const Pattern pattern(std::max<std::size_t>(plan.opt.size, kReadChunk));
  plan.pattern = &pattern;
  plan.t0 = mono_ns();
  plan.t_measure = plan.t0 + static_cast<std::int64_t>(plan.opt.warmup * 1e9);
  plan.t_end = plan.t_measure + static_cast<std::int64_t>(plan.opt.secs * 1e9);

  std::vector<Result> results(threads);
  std::vector<std::thread> pool;
  for (std::uint32_t t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
#ifdef ECHO_LOAD_HAVE_URING
      if (plan.opt.engine == Engine::Uring) {
        results[t] = run_uring(plan, t, threads);
        return;
      }
#endif
      results[t] = run_epoll(plan, t, threads);
    });
  for (auto& th : pool) th.join();

  Result total;
  for (const auto& r : results) {
    total.hist.merge(r.hist);
    total.lag.merge(r.lag);
    total.unfinished.merge(r.unfinished);
    total.requests += r.requests;
    total.errors.add(r.errors);
    total.connected += r.connected;
    total.alive += r.alive;
  }
  // Only unfinished requests older than every completed one are added: they are the
  // hidden tail. Younger ones are ordinary in-flight requests and would bias it down.
  const std::uint64_t late = total.hist.merge_above(total.unfinished, total.hist.max());
  report(plan, threads, total, late);
  return total.errors.total() ? 1 : 0;
}
