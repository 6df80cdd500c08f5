// Work and messages across loops (issue 10):
//   BM_cross_loop_spawn/S       co_await spawn_on(other loop, empty task), one in flight;
//                               p50/p99 in us. S = loop_options::idle_spin in us on both
//                               loops (0: the default, an idle loop sleeps in the kernel)
//   BM_cv_round_trip            the same round trip between two plain threads through a
//                               std::mutex + std::condition_variable (what users would
//                               otherwise write); p50/p99
//   BM_channel_cross_loop       make_loop_channel(1024): one sender loop, one receiver
//                               loop, 200,000 ints per iteration; items_per_second
//   BM_channel_mutex_cv         a bounded std::deque under std::mutex with two
//                               condition_variables, one producer thread, one consumer
//                               thread, the same messages; items_per_second
// tokio's side: bench/peers/tokio/src/bin/tokio_cross.rs.
#include <benchmark/benchmark.h>

#include "percentiles.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/loop_channel.hpp>
#include <eddy/runtime/spawn_on.hpp>
#include <eddy/runtime/task.hpp>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using std::chrono::steady_clock;

eddy::task<void> empty_task() { co_return; }

// Coroutine parameters by reference are safe here: loop::run returns only when the
// task has finished.
eddy::task<void> spawn_round_trips(benchmark::State& state, eddy::loop_handle other, std::vector<std::int64_t>& ns) {
  for (auto _ : state) {
    const auto t0 = steady_clock::now();
    co_await eddy::spawn_on(other, empty_task());
    ns.push_back((steady_clock::now() - t0).count());
  }
}

void BM_cross_loop_spawn(benchmark::State& state) {
  eddy::loop_options lo;
  lo.idle_spin = std::chrono::microseconds(state.range(0));
  auto other = std::make_unique<eddy::loop>(lo);
  eddy::loop_handle oh = other->handle();
  std::thread t([&] {
    other->run_forever();
    other->close();
  });
  std::vector<std::int64_t> ns;
  ns.reserve(1 << 20);
  {
    eddy::loop home(lo);
    home.run(spawn_round_trips(state, oh, ns));
    home.close();
  }
  (void)oh.stop();
  t.join();
  eddy_bench::report_percentiles(state, ns);
}
BENCHMARK(BM_cross_loop_spawn)->Arg(0)->Arg(50)->UseRealTime();

void BM_cv_round_trip(benchmark::State& state) {
  std::mutex mu;
  std::condition_variable cv;
  int phase = 0;  // 0 idle, 1 request, 2 reply, 3 stop
  std::thread peer([&] {
    std::unique_lock lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return phase == 1 || phase == 3; });
      if (phase == 3) return;
      phase = 2;
      cv.notify_all();
    }
  });
  std::vector<std::int64_t> ns;
  ns.reserve(1 << 20);
  for (auto _ : state) {
    const auto t0 = steady_clock::now();
    std::unique_lock lk(mu);
    phase = 1;
    cv.notify_all();
    cv.wait(lk, [&] { return phase == 2; });
    phase = 0;
    lk.unlock();
    ns.push_back((steady_clock::now() - t0).count());
  }
  {
    std::lock_guard lk(mu);
    phase = 3;
  }
  cv.notify_all();
  peer.join();
  eddy_bench::report_percentiles(state, ns);
}
BENCHMARK(BM_cv_round_trip)->UseRealTime();

constexpr std::int64_t channel_messages = 200'000;

eddy::task<void> produce(eddy::loop_sender<std::int64_t> tx) {
  for (std::int64_t i = 0; i < channel_messages; ++i) co_await tx.send(i);
}

eddy::task<std::int64_t> consume(eddy::loop_receiver<std::int64_t> rx) {
  std::int64_t sum = 0;
  while (auto v = co_await rx.recv()) sum += *v;
  co_return sum;
}

void BM_channel_cross_loop(benchmark::State& state) {
  for (auto _ : state) {
    auto [tx, rx] = eddy::make_loop_channel<std::int64_t>(1024);
    std::thread sender([t = std::move(tx)]() mutable {
      eddy::loop l;
      l.run(produce(std::move(t)));
      l.close();
    });
    eddy::loop l;
    benchmark::DoNotOptimize(l.run(consume(std::move(rx))));
    l.close();
    sender.join();
  }
  state.SetItemsProcessed(state.iterations() * channel_messages);
}
BENCHMARK(BM_channel_cross_loop)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_channel_mutex_cv(benchmark::State& state) {
  for (auto _ : state) {
    std::mutex mu;
    std::condition_variable not_full, not_empty;
    std::deque<std::int64_t> q;
    bool done = false;
    std::thread producer([&] {
      for (std::int64_t i = 0; i < channel_messages; ++i) {
        std::unique_lock lk(mu);
        not_full.wait(lk, [&] { return q.size() < 1024; });
        q.push_back(i);
        lk.unlock();
        not_empty.notify_one();
      }
      std::lock_guard lk(mu);
      done = true;
      not_empty.notify_one();
    });
    std::int64_t sum = 0;
    for (;;) {
      std::unique_lock lk(mu);
      not_empty.wait(lk, [&] { return !q.empty() || done; });
      if (q.empty()) break;
      sum += q.front();
      q.pop_front();
      lk.unlock();
      not_full.notify_one();
    }
    producer.join();
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * channel_messages);
}
BENCHMARK(BM_channel_mutex_cv)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
