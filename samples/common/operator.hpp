// What the sample servers tell their operators (docs/operability.md): timestamped
// log lines, a one-line summary every --stats N seconds, and a task dump on
// SIGUSR2. Everything here is the public API a user's server would use: loop::
// metrics(), loop::dump_tasks(), thread_pool::stats(), eddy::interval and
// eddy::signal_set.
#pragma once

#include <signal.h>
#include <sys/time.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <eddy/runtime/interval.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/sched/signal_set.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <functional>
#include <string>

#ifndef EDDY_VERSION
#define EDDY_VERSION "unknown"
#endif

namespace sample {

// "2026-12-07T09:12:03.123Z": UTC, milliseconds, sortable.
inline std::string timestamp() {
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  tm t{};
  ::gmtime_r(&tv.tv_sec, &t);
  char b[96];  // room for any int the compiler imagines in each field
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(tv.tv_usec / 1000));
  return b;
}

// A log line on stderr: "<timestamp> <prog>: <message>".
[[gnu::format(printf, 2, 3)]] inline void logf(const char* prog, const char* fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "%s %s: %s\n", timestamp().c_str(), prog, msg);
}

inline void print_version(const char* prog) {
  std::printf("%s (eddy %s)\n", prog, EDDY_VERSION);
}

// The blocking pool (DNS lookups of a host-name upstream, file work on epoll and
// libuv) over an interval: "| blocking pool: queued 0 running 1 | wait n 3 mean ...
// | run n 3 mean ...", or nothing when it had no job and holds none. blocking_pool()
// is elastic with no resident thread, so naming it starts nothing.
inline std::string pool_part(const eddy::pool_stats& now, const eddy::pool_stats& last) {
  const eddy::latency_histogram wait = now.queue_wait.delta(last.queue_wait);
  const eddy::latency_histogram run = now.run_time.delta(last.run_time);
  if (wait.count == 0 && run.count == 0 && now.queued == 0 && now.running == 0) return {};
  return " | blocking pool: queued " + std::to_string(now.queued) + " running " + std::to_string(now.running) +
         " | wait " + wait.summary() + " | run " + run.summary();
}

// --stats N: every `period`, one line with the sample's own counters (`extra`),
// the loop's metrics over the interval and the blocking pool's jobs, if any.
inline eddy::task<void> print_stats(const char* prog, std::chrono::milliseconds period,
                                    std::function<std::string()> extra) {
  eddy::interval every(period, eddy::missed_tick::skip);
  co_await every.tick();  // the first tick is now
  eddy::loop& l = eddy::loop::current();
  eddy::loop_metrics last = l.metrics();
  eddy::pool_stats last_pool = eddy::blocking_pool().stats();
  auto last_at = eddy::clock::now();
  for (;;) {
    co_await every.tick();
    const eddy::loop_metrics now = l.metrics();
    const eddy::pool_stats pool = eddy::blocking_pool().stats();
    const auto at = eddy::clock::now();
    const std::string mine = extra ? extra() + " | " : std::string();
    logf(prog, "stats: %s%s%s", mine.c_str(), now.delta(last).summary(at - last_at).c_str(),
         pool_part(pool, last_pool).c_str());
    last = now;
    last_pool = pool;
    last_at = at;
  }
}

// For a dump: the blocking pool since the start, one line.
inline std::string pool_dump() {
  const eddy::pool_stats p = eddy::blocking_pool().stats();
  return "eddy: blocking pool: threads " + std::to_string(p.threads) + " queued " + std::to_string(p.queued) +
         " running " + std::to_string(p.running) + " completed " + std::to_string(p.completed) + " | wait " +
         p.queue_wait.summary() + " | run " + p.run_time.summary() + "\n";
}

// SIGUSR2: the loop's task dump on stderr. `usr2` must have been made before any
// thread started (signals stay blocked in every thread).
inline eddy::task<void> dump_on_signal(const char* prog, eddy::signal_set& usr2) {
  for (;;) {
    (void)co_await usr2.wait();
    logf(prog, "SIGUSR2: task dump follows");
    std::fputs(eddy::loop::current().dump_tasks().c_str(), stderr);
    std::fputs(pool_dump().c_str(), stderr);
    std::fflush(stderr);
  }
}

}  // namespace sample
