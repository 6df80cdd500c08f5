// A TCP server on every core: one loop per thread (eddy::loop_group), each with its
// own SO_REUSEPORT listener on the same address, so the kernel spreads connections
// across the loops and no connection ever crosses a thread. Used by echo_server and
// tcp_proxy for --threads N (N > 1, or 0 = one per core).
//
// Protocol:
//  1. main() blocks SIGINT and SIGTERM before the group starts any thread, so every
//     loop thread inherits the mask and the signals wait for loop 0's signal_set.
//  2. Loop 0 binds the first listener (learning the port if 0 was asked), then starts
//     one `per_loop` task on every loop with spawn_on (its own included); each binds
//     its listener (loop 0's is handed over), reports on a loop channel, and serves.
//  3. Once every loop reported, "listening on HOST PORT" is printed.
//  4. First signal: every per-loop task is cancelled, which for `serve` means stop
//     accepting and let the connections finish for the grace period (each loop
//     drains its own eddy::graceful_shutdown, the single-loop path's shutdown; see
//     drain_loop); a second signal cancels them again: close whatever is left now.
//  5. Loop 0 awaits every loop's task; each returns how many connections it
//     accepted, printed per loop so a test can see the spread.
// Meanwhile loop 0 dumps every loop's tasks on SIGUSR2 (each dump taken on its own
// loop) and, with --stats N, logs the group's summed metrics every N seconds.
#pragma once

#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <eddy/io/tcp.hpp>
#include <eddy/runtime/group_metrics.hpp>
#include <eddy/runtime/loop_channel.hpp>
#include <eddy/runtime/loop_group.hpp>
#include <eddy/runtime/spawn_on.hpp>
#include <eddy/runtime/when.hpp>
#include <eddy/sched/graceful_shutdown.hpp>
#include <eddy/sched/signal_set.hpp>
#include <exception>
#include <string>
#include <vector>

#include "operator.hpp"

namespace sample {

/// What a sample serves on each loop: runs until cancelled (first cancellation: stop
/// accepting and finish; a second: close now) and returns the connections accepted.
template <class Ctx>
using per_loop_serve = eddy::task<std::uint64_t> (*)(std::size_t index, eddy::tcp_listener& listener,
                                                      const Ctx& ctx);

template <class Ctx>
eddy::task<std::uint64_t> per_loop(std::size_t index, eddy::tcp_listener listener, eddy::socket_address addr,
                                   eddy::loop_sender<bool> ready, per_loop_serve<Ctx> serve, const Ctx* ctx) {
  if (!listener) {
    try {
      eddy::tcp_listen_options lo;
      lo.backlog = 4096;
      lo.reuse_port = true;
      listener = eddy::tcp_listener::bind(addr, lo);
    } catch (...) {
      ready.try_send(false);
      throw;
    }
  }
  ready.try_send(true);
  ready.reset();
  co_return co_await serve(index, listener, *ctx);
}

/// One loop's graceful stop under --threads, once its per-loop task was cancelled (the
/// first signal, which loop 0 reads): stop `acceptor`, close `listener`, then
/// `shutdown.drain(grace)` (made with no signals of its own, its connections in
/// `shutdown.connections()`). A second cancellation (the second signal) cancels the
/// drain, which closes what is left and returns once every connection has unwound.
inline eddy::task<void> drain_loop(const char* prog, std::size_t index, eddy::join_handle<void>& acceptor,
                                   eddy::tcp_listener& listener, eddy::graceful_shutdown& shutdown,
                                   std::chrono::milliseconds grace, const char* what) {
  // The second cancellation can land before the drain: pending when the wait for
  // the acceptor starts (it throws at once and leaves the acceptor running; the
  // acceptor's own cancelled_error leaves it done), during that wait (the acceptor
  // has not yet seen acceptor.cancel(), so join_handle keeps the second one here
  // rather than merge it into the first), or while the listener closes. Remember
  // it and close at once; it used to be swallowed there, and the drain then waited
  // out the whole grace period.
  bool second = false;
  acceptor.cancel();
  while (!acceptor.done()) {
    try {
      co_await acceptor;
    } catch (const eddy::cancelled_error&) {
      if (!acceptor.done()) second = true;
    }
  }
  for (;;) {
    try {
      co_await listener.close();  // a second call finishes what a cancelled one began
      break;
    } catch (const eddy::cancelled_error&) {
      second = true;
    }
  }
  if (second) {
    const eddy::shutdown_result r = co_await shutdown.drain(std::chrono::milliseconds(0));
    logf(prog, "loop %zu: second signal, closed the remaining %zu %s(s)", index, r.cancelled, what);
    co_return;
  }
  logf(prog, "loop %zu: stopped accepting; %zu %s(s) open, up to %.1f s to finish", index,
       shutdown.connections().size(), what, static_cast<double>(grace.count()) / 1000.0);
  try {
    const eddy::shutdown_result r = co_await shutdown.drain(grace);
    logf(prog, "loop %zu: %zu %s(s) finished, %zu closed%s", index, r.finished, what, r.cancelled,
         r.cancelled != 0 ? " at the deadline" : "");
  } catch (const eddy::cancelled_error&) {
    logf(prog, "loop %zu: second signal, closed the remaining %s(s)", index, what);
  }
}

template <class Ctx>
eddy::task<void> cancel_on_second_signal(eddy::signal_set* stop,
                                         std::vector<eddy::cross_join_handle<std::uint64_t>>* loops) {
  (void)co_await stop->wait();
  for (auto& h : *loops) h.cancel();
}

inline eddy::task<void> group_operator(const char* prog, eddy::loop_group* g, eddy::signal_set* usr2,
                                       std::chrono::milliseconds stats) {
  auto dumps = [](const char* p, eddy::loop_group* grp, eddy::signal_set* sigs) -> eddy::task<void> {
    for (;;) {
      (void)co_await sigs->wait();
      logf(p, "SIGUSR2: task dump of %zu loops follows", grp->size());
      std::fputs((co_await eddy::group_dump_tasks(*grp)).c_str(), stderr);
      std::fputs(pool_dump().c_str(), stderr);
      std::fflush(stderr);
    }
  };
  if (stats.count() == 0) co_return co_await dumps(prog, g, usr2);
  eddy::join_handle<void> dumper = eddy::spawn(dumps(prog, g, usr2));
  eddy::interval every(stats, eddy::missed_tick::skip);
  co_await every.tick();
  eddy::loop_metrics last = co_await eddy::group_metrics(*g);
  eddy::pool_stats last_pool = eddy::blocking_pool().stats();
  auto last_at = eddy::clock::now();
  try {
    for (;;) {
      co_await every.tick();
      const eddy::loop_metrics now = co_await eddy::group_metrics(*g);
      const eddy::pool_stats pool = eddy::blocking_pool().stats();
      const auto at = eddy::clock::now();
      logf(prog, "stats: loops %zu | %s%s", now.loops, now.delta(last).summary(at - last_at).c_str(),
           pool_part(pool, last_pool).c_str());
      last = now;
      last_pool = pool;
      last_at = at;
    }
  } catch (...) {
    dumper.cancel();
    throw;
  }
}

template <class Ctx>
eddy::task<void> run_loop_zero(const char* prog, eddy::loop_group* g, eddy::socket_address addr,
                               per_loop_serve<Ctx> serve, const Ctx* ctx, int* status,
                               std::chrono::milliseconds stats) {
  eddy::signal_set stop{SIGINT, SIGTERM};
  eddy::signal_set usr2{SIGUSR2};
  eddy::join_handle<void> ops = eddy::spawn(group_operator(prog, g, &usr2, stats));
  eddy::tcp_listen_options lo;
  lo.backlog = 4096;
  lo.reuse_port = true;
  eddy::tcp_listener first = eddy::tcp_listener::bind(addr, lo);
  const eddy::socket_address bound = first.local_address();
  auto [ready_tx, ready_rx] = eddy::make_loop_channel<bool>(g->size());
  std::vector<eddy::cross_join_handle<std::uint64_t>> loops;
  for (std::size_t i = 0; i < g->size(); ++i) {
    loops.push_back(eddy::spawn_on(g->handle(i), per_loop<Ctx>(i, i == 0 ? std::move(first) : eddy::tcp_listener(),
                                                                bound, ready_tx, serve, ctx)));
  }
  ready_tx.reset();
  bool all_bound = true;
  for (std::size_t i = 0; i < g->size(); ++i) {
    auto ok = co_await ready_rx.recv();
    if (!ok || !*ok) {
      all_bound = false;
      break;
    }
  }
  int sig = 0;
  if (all_bound) {
    std::printf("listening on %s %u\n", bound.host().c_str(), static_cast<unsigned>(bound.port()));
    std::fflush(stdout);
    sig = co_await stop.wait();
    logf(prog, "%s, stopping %zu loops", sigabbrev_np(sig), g->size());
  }
  ops.cancel();
  try {
    co_await ops;
  } catch (const eddy::cancelled_error&) {
  }
  for (auto& h : loops) h.cancel();
  eddy::join_handle<void> second = eddy::spawn(cancel_on_second_signal<Ctx>(&stop, &loops));
  std::exception_ptr failure;
  std::string spread;
  for (std::size_t i = 0; i < loops.size(); ++i) {
    try {
      const std::uint64_t n = co_await loops[i];
      spread += (i ? ", " : "") + std::string("loop ") + std::to_string(i) + ": " + std::to_string(n);
    } catch (const eddy::cancelled_error&) {
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
  }
  second.cancel();
  try {
    co_await second;
  } catch (const eddy::cancelled_error&) {
  }
  if (failure) std::rethrow_exception(failure);
  logf(prog, "connections accepted per loop: %s", spread.c_str());
  *status = 0;
}

/// Runs `serve` on `threads` loops (0 = one per core) behind SO_REUSEPORT listeners
/// on `addr`; returns the exit status (0 after a signal, 1 if it could not run).
template <class Ctx>
int run_on_loops(const char* prog, std::size_t threads, const eddy::loop_options& lo, eddy::socket_address addr,
                 per_loop_serve<Ctx> serve, const Ctx& ctx,
                 std::chrono::milliseconds stats = std::chrono::milliseconds(0)) {
  // Before the group starts a thread: every loop thread inherits this mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  int status = 1;
  try {
    eddy::loop_group_options go;
    go.loops = threads;
    go.loop = lo;
    go.sigint_cancels = false;  // loop 0's signal_set handles SIGINT and SIGTERM
    eddy::loop_group g(go);
    g.run([&](std::size_t i) -> eddy::task<void> {
      if (i == 0) return run_loop_zero<Ctx>(prog, &g, addr, serve, &ctx, &status, stats);
      return [](std::size_t) -> eddy::task<void> { co_return; }(i);  // loop i serves spawn_on work
    });
  } catch (const eddy::loop_group_error& e) {
    try {
      std::rethrow_exception(e.cause());
    } catch (const std::exception& cause) {
      std::fprintf(stderr, "%s: %s\n", prog, cause.what());
    } catch (...) {
      std::fprintf(stderr, "%s: %s\n", prog, e.what());
    }
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", prog, e.what());
    return 1;
  }
  return status;
}

}  // namespace sample
