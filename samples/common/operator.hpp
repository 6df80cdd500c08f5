// What the sample servers tell their operators (docs/operability.md): timestamped
// log lines, a one-line summary every --stats N seconds, and a task dump on
// SIGUSR2. Everything here is the public API a user's server would use: loop::
// metrics(), loop::dump_tasks(), eddy::interval and eddy::signal_set.
#pragma once

#include <signal.h>
#include <sys/time.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <eddy/runtime/interval.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/sched/signal_set.hpp>
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

// --stats N: every `period`, one line with the sample's own counters (`extra`)
// and the loop's metrics over the interval.
inline eddy::task<void> print_stats(const char* prog, std::chrono::milliseconds period,
                                    std::function<std::string()> extra) {
  eddy::interval every(period, eddy::missed_tick::skip);
  co_await every.tick();  // the first tick is now
  eddy::loop& l = eddy::loop::current();
  eddy::loop_metrics last = l.metrics();
  auto last_at = eddy::clock::now();
  for (;;) {
    co_await every.tick();
    const eddy::loop_metrics now = l.metrics();
    const auto at = eddy::clock::now();
    const std::string mine = extra ? extra() + " | " : std::string();
    logf(prog, "stats: %s%s", mine.c_str(), now.delta(last).summary(at - last_at).c_str());
    last = now;
    last_at = at;
  }
}

// SIGUSR2: the loop's task dump on stderr. `usr2` must have been made before any
// thread started (signals stay blocked in every thread).
inline eddy::task<void> dump_on_signal(const char* prog, eddy::signal_set& usr2) {
  for (;;) {
    (void)co_await usr2.wait();
    logf(prog, "SIGUSR2: task dump follows");
    std::fputs(eddy::loop::current().dump_tasks().c_str(), stderr);
    std::fflush(stderr);
  }
}

}  // namespace sample
