// Boost.Asio's side of the micro-suite (bench/compare): the same operations as
// eddy_micro's BM_call_soon, BM_spawn_join and BM_timer_arm_cancel/1000000, written
// against Asio's public API and timed by Google Benchmark the same way.
#include <benchmark/benchmark.h>

#include <boost/asio.hpp>

#include <chrono>
#include <memory>
#include <random>
#include <vector>

namespace asio = boost::asio;

namespace {

// post a handler and run it; the context polls once per 256, as BM_call_soon turns
// eddy's loop once per 256 callbacks.
void BM_asio_post(benchmark::State& state) {
  asio::io_context ioc(1);
  std::uint64_t ran = 0;
  int pending = 0;
  for (auto _ : state) {
    asio::post(ioc, [&ran] { ++ran; });
    if (++pending == 256) {
      ioc.poll();
      ioc.restart();
      pending = 0;
    }
  }
  ioc.poll();
  benchmark::DoNotOptimize(ran);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_asio_post);

asio::awaitable<void> empty() { co_return; }

asio::awaitable<void> spawn_join_body(benchmark::State* state) {
  auto ex = co_await asio::this_coro::executor;
  for (auto _ : *state) co_await asio::co_spawn(ex, empty(), asio::use_awaitable);
}

// co_spawn an empty coroutine and await its completion.
void BM_asio_co_spawn_join(benchmark::State& state) {
  asio::io_context ioc(1);
  asio::co_spawn(ioc, spawn_join_body(&state), asio::detached);
  ioc.run();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_asio_co_spawn_join);

// arm and cancel a steady_timer with state.range(0) others armed; the aborted
// handlers run once per 256, as a busy loop would run them.
void BM_asio_timer_arm_cancel(benchmark::State& state) {
  asio::io_context ioc(1);
  std::mt19937_64 rng(42);
  std::vector<std::unique_ptr<asio::steady_timer>> live;
  live.reserve(static_cast<std::size_t>(state.range(0)));
  for (std::int64_t i = 0; i < state.range(0); ++i) {
    auto t = std::make_unique<asio::steady_timer>(ioc);
    t->expires_after(std::chrono::milliseconds(1000 + rng() % 3'600'000));
    t->async_wait([](boost::system::error_code) {});
    live.push_back(std::move(t));
  }
  const auto base = asio::steady_timer::clock_type::now();
  std::vector<asio::steady_timer::time_point> when(1024);
  for (auto& w : when) w = base + std::chrono::milliseconds(1 + rng() % 100'000);
  asio::steady_timer t(ioc);
  std::size_t i = 0;
  int pending = 0;
  for (auto _ : state) {
    t.expires_at(when[i++ & 1023]);
    t.async_wait([](boost::system::error_code) {});
    t.cancel();
    if (++pending == 256) {
      ioc.poll();
      ioc.restart();
      pending = 0;
    }
  }
  for (auto& l : live) l->cancel();
  ioc.poll();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_asio_timer_arm_cancel)->Arg(1'000'000);

}  // namespace

BENCHMARK_MAIN();
