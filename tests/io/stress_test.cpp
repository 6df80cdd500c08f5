// The I/O core under churn (issue 19, Tests; RELIABILITY.md rows 7, 8, 17, 18): on
// a two-loop group, for a while, workers on both loops
//  - close streams with a read pending, on their own loop, on the other loop
//    (spawn_on drops them there) or on a pool thread, and open new ones at once,
//    so fd numbers are reused immediately, then check a round trip on the new one;
//  - start storms of reads and cancel them after a random delay, counting every
//    byte (a cancelled read reads nothing or returns what it read);
//  - read a sequenced byte stream with pauses (receive() stops when its queue is
//    full and re-arms), checking every byte;
//  - watch dups of a pipe the way asyncio's add_reader/remove_reader do.
// A watchdog thread fails the run if any awaited operation stays stuck for more
// than 2 s. Every backend; under TSan too (suite threads).
//
// In the suite each backend runs ~1.5 s; by hand EDDY_IO_STRESS_SECS=60 (the
// counts are printed at the end).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

constexpr int workers_per_loop = 8;
constexpr auto stuck_limit = 2s;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(eddy::clock::now().time_since_epoch())
      .count();
}

struct counts {
  std::atomic<std::uint64_t> round_trips{0}, local_closes{0}, cross_loop_closes{0}, thread_closes{0},
      cancels{0}, cancel_storm_ops{0}, paused_bytes{0}, pauses{0}, dup_cycles{0}, errors{0};
};

// One per worker: when its current await started (0: not waiting).
struct watch_slot {
  std::atomic<std::int64_t> since{0};
  std::atomic<const char*> what{""};
};

struct ctx {
  eddy::loop_group* g = nullptr;
  std::int64_t deadline_ns = 0;
  counts c;
  std::array<watch_slot, 2 * workers_per_loop> slots;
  std::atomic<bool> stuck{false};
};

struct watched {
  watch_slot& s;
  watched(watch_slot& sl, const char* what) : s(sl) {
    s.what.store(what, std::memory_order_relaxed);
    s.since.store(now_ns(), std::memory_order_release);
  }
  ~watched() { s.since.store(0, std::memory_order_release); }
};

bool running(const ctx& x) { return now_ns() < x.deadline_ns && !x.stuck.load(); }

task<std::size_t> read_into(eddy::unix_stream* s, std::span<std::byte> b) {
  co_return co_await s->read_some(b);
}

task<int> drop_there(eddy::unix_stream s) {
  co_return s.fd();
}

int drop_on_thread(eddy::unix_stream s) { return s.fd(); }

// Close with a read pending, in one of three places; reuse the number at once.
task<void> reuse_worker(ctx* x, watch_slot* slot, std::size_t other, unsigned seed) {
  std::minstd_rand rng(seed);
  std::array<std::byte, 16> buf{};
  while (running(*x)) {
    auto [a, b] = eddy::unix_stream::pair();
    auto pending = eddy::spawn(read_into(&a, buf));
    co_await eddy::yield_now();
    const unsigned how = rng() % 3;
    if (how == 0) {
      co_await a.close();  // cancels the pending read
      ++x->c.local_closes;
    } else {
      pending.cancel();
    }
    try {
      watched w(*slot, "a read cancelled by close or cancel");
      (void)co_await pending;
    } catch (const eddy::cancelled_error&) {
    }
    if (how == 1) {
      watched w(*slot, "spawn_on dropping a stream");
      (void)co_await eddy::spawn_on(x->g->handle(other), drop_there(std::move(a)));
      ++x->c.cross_loop_closes;
    } else if (how == 2) {
      watched w(*slot, "to_thread dropping a stream");
      (void)co_await eddy::to_thread(&drop_on_thread, std::move(a));
      ++x->c.thread_closes;
    }
    auto [c, d] = eddy::unix_stream::pair();
    {
      watched w(*slot, "a round trip on a reused number");
      co_await d.write_all(std::string_view("xy"));
      const std::size_t n = co_await c.read_some(buf);
      if (n != 2 || buf[0] != std::byte{'x'}) ++x->c.errors;
    }
    ++x->c.round_trips;
  }
}

task<std::size_t> read_some_bytes(eddy::unix_stream* s, std::span<std::byte> b) {
  co_return co_await s->read_some(b);
}

// Reads started and cancelled at random; every byte written is read exactly once.
task<void> cancel_storm_worker(ctx* x, watch_slot* slot, unsigned seed) {
  std::minstd_rand rng(seed);
  auto [a, b] = eddy::unix_stream::pair();
  std::uint64_t written = 0, read = 0;
  std::vector<std::array<std::byte, 8>> bufs(16);
  while (running(*x)) {
    std::vector<eddy::join_handle<std::size_t>> hs;
    for (auto& bb : bufs) hs.push_back(eddy::spawn(read_some_bytes(&a, bb)));
    const unsigned writes = rng() % 4;
    for (unsigned k = 0; k < writes; ++k) {
      co_await b.write_all(std::string_view("abc"));
      written += 3;
    }
    if (rng() % 2) co_await eddy::sleep_for(std::chrono::microseconds(rng() % 300));
    for (auto& h : hs) h.cancel();
    watched w(*slot, "a cancelled read");
    for (auto& h : hs) {
      try {
        read += co_await h;
      } catch (const eddy::cancelled_error&) {
        ++x->c.cancels;
      }
      ++x->c.cancel_storm_ops;
    }
  }
  // Drain what is left: every byte must still be there.
  b.shutdown_write();
  std::array<std::byte, 256> rest{};
  for (;;) {
    watched w(*slot, "draining after a cancel storm");
    const std::size_t n = co_await a.read_some(rest);
    if (n == 0) break;
    read += n;
  }
  if (read != written) ++x->c.errors;
}

// A sequenced stream read with pauses; receive() pauses itself when its queue is
// full and re-arms when read again.
task<void> producer(ctx* x, eddy::unix_stream* b, std::uint64_t* sent) {
  std::array<std::byte, 4096> chunk{};
  std::uint64_t k = 0;
  while (running(*x)) {
    for (auto& c : chunk) c = static_cast<std::byte>(k++ % 251);
    co_await b->write_all(chunk);
    *sent += chunk.size();
  }
  b->shutdown_write();
}

task<void> paused_reader_worker(ctx* x, watch_slot* slot, unsigned seed) {
  std::minstd_rand rng(seed);
  auto [a, b] = eddy::unix_stream::pair();
  std::uint64_t sent = 0, got = 0;
  auto p = eddy::spawn(producer(x, &b, &sent));
  const bool use_receive = seed % 2 == 0;
  std::array<std::byte, 1000> buf{};
  for (;;) {
    if (rng() % 16 == 0) {
      co_await eddy::sleep_for(std::chrono::microseconds(rng() % 2000));
      ++x->c.pauses;
    }
    std::span<const std::byte> d;
    eddy::recv_buffer rb;
    {
      watched w(*slot, "a paused reader's read");
      if (use_receive) {
        rb = co_await a.receive();
        d = rb.data();
      } else {
        d = std::span<const std::byte>(buf.data(), co_await a.read_some(buf));
      }
    }
    if (d.empty()) break;
    for (std::byte v : d)
      if (v != static_cast<std::byte>(got++ % 251)) {
        ++x->c.errors;
        break;
      }
  }
  co_await p;
  if (got != sent) ++x->c.errors;
  x->c.paused_bytes += got;
}

// asyncio's add_reader/remove_reader/add_reader: a dup watched, closed, dup'ed
// again (usually the same number) with data pending or not.
task<void> dup_worker(ctx* x, watch_slot* slot, unsigned seed) {
  std::minstd_rand rng(seed);
  auto [r, w] = eddy::make_pipe();
  std::array<std::byte, 1> one{std::byte{7}};
  while (running(*x)) {
    eddy::unique_fd d(::dup(r.get()));
    const bool before = rng() % 2 == 0;
    if (before) (void)co_await eddy::write(w.get(), one);
    auto p = eddy::spawn([](int fd) -> task<std::size_t> { co_return co_await eddy::poll(fd, POLLIN); }(d.get()));
    co_await eddy::yield_now();
    if (!before) (void)co_await eddy::write(w.get(), one);
    {
      watched wd(*slot, "poll on a dup with data pending");
      if ((co_await p & POLLIN) == 0) ++x->c.errors;
    }
    d.reset();
    (void)co_await eddy::read(r.get(), one);
    ++x->c.dup_cycles;
  }
}

task<void> loop_main(ctx* x, std::size_t i) {
  const std::size_t other = 1 - i;
  std::vector<eddy::join_handle<void>> hs;
  const unsigned base = static_cast<unsigned>(i * 100 + 1);
  watch_slot* s = &x->slots[i * workers_per_loop];
  hs.push_back(eddy::spawn(reuse_worker(x, s + 0, other, base + 0)));
  hs.push_back(eddy::spawn(reuse_worker(x, s + 1, other, base + 1)));
  hs.push_back(eddy::spawn(reuse_worker(x, s + 2, other, base + 2)));
  hs.push_back(eddy::spawn(cancel_storm_worker(x, s + 3, base + 3)));
  hs.push_back(eddy::spawn(cancel_storm_worker(x, s + 4, base + 4)));
  hs.push_back(eddy::spawn(paused_reader_worker(x, s + 5, base + 5)));
  hs.push_back(eddy::spawn(paused_reader_worker(x, s + 6, base + 6)));
  hs.push_back(eddy::spawn(dup_worker(x, s + 7, base + 7)));
  for (auto& h : hs) co_await h;
}

double stress_secs() {
  const char* v = std::getenv("EDDY_IO_STRESS_SECS");
  return v != nullptr && *v != '\0' ? std::strtod(v, nullptr) : 1.5;
}

class io_stress_test : public ::testing::TestWithParam<eddy::backend_kind> {};

}  // namespace

TEST_P(io_stress_test, churn_closes_reuse_cancels_and_pauses_leave_no_op_stuck) {
  const int fds_before = eddy_test::count_fds();
  eddy::loop_group_options o;
  o.loops = 2;
  o.loop.backend = GetParam();
  o.sigint_cancels = false;
  eddy::loop_group g(o);
  ctx x;
  x.g = &g;
  const double secs = stress_secs();
  ASSERT_GT(secs, 0.0);
  ASSERT_LE(secs, 3600.0);
  x.deadline_ns = now_ns() + static_cast<std::int64_t>(secs * 1e9);
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    std::int64_t stuck_since = 0;
    while (!done.load()) {
      std::this_thread::sleep_for(50ms);
      const std::int64_t now = now_ns();
      for (auto& s : x.slots) {
        const std::int64_t since = s.since.load(std::memory_order_acquire);
        if (since != 0 && now - since > std::chrono::nanoseconds(stuck_limit).count() && !x.stuck) {
          std::fprintf(stderr, "io_stress: stuck for more than 2 s: %s\n", s.what.load());
          x.stuck = true;
          stuck_since = now;
          g.cancel();
        }
      }
      if (stuck_since != 0 && now - stuck_since > 10'000'000'000) {
        std::fputs("io_stress: still stuck 10 s after cancelling; aborting\n", stderr);
        std::abort();
      }
    }
  });
  try {
    g.run([&](std::size_t i) { return loop_main(&x, i); });
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  done = true;
  watchdog.join();
  EXPECT_FALSE(x.stuck.load()) << "an operation was stuck for more than 2 s";
  EXPECT_EQ(x.c.errors.load(), 0u);
  EXPECT_GT(x.c.round_trips.load(), 0u);
  EXPECT_GT(x.c.cross_loop_closes.load(), 0u);
  EXPECT_GT(x.c.thread_closes.load(), 0u);
  EXPECT_GT(x.c.cancels.load(), 0u);
  EXPECT_GT(x.c.dup_cycles.load(), 0u);
  std::printf(
      "io_stress %s %.1f s: %llu round trips on reused numbers (closes: %llu local, %llu on the "
      "other loop, %llu on a pool thread); %llu cancel-storm reads (%llu cancelled); %llu bytes "
      "through paused readers (%llu pauses); %llu dup cycles; %llu errors\n",
      std::string(eddy::backend_name(GetParam())).c_str(), secs,
      static_cast<unsigned long long>(x.c.round_trips.load()),
      static_cast<unsigned long long>(x.c.local_closes.load()),
      static_cast<unsigned long long>(x.c.cross_loop_closes.load()),
      static_cast<unsigned long long>(x.c.thread_closes.load()),
      static_cast<unsigned long long>(x.c.cancel_storm_ops.load()),
      static_cast<unsigned long long>(x.c.cancels.load()),
      static_cast<unsigned long long>(x.c.paused_bytes.load()),
      static_cast<unsigned long long>(x.c.pauses.load()),
      static_cast<unsigned long long>(x.c.dup_cycles.load()),
      static_cast<unsigned long long>(x.c.errors.load()));
  EXPECT_EQ(eddy_test::count_fds(), fds_before) << "fd leak";
}

EDDY_BACKEND_TEST_SUITE(io_stress_test);
