// A cross-thread wakeup is never lost (DESIGN.md §3; issue 8, section 3). Several
// threads call call_soon_threadsafe at random moments while the loop, with no timer
// armed (its blocking wait has no deadline: only a wakeup or I/O ends it), reads a
// pipe that a writer thread fills in short bursts between quiet periods. Posts make
// the loop do a little work (some turns with the ready queue non-empty, so the next
// iterations reap without blocking; every other post an I/O round trip through a
// second pipe, so some waits end on I/O rather than on a wakeup): the two ways a
// wakeup token could be reaped while "a wakeup is on its way" stays set.
//
// A watchdog flags a hang: a post whose call_soon_threadsafe returned more than a
// threshold ago has not run, and all that time the loop thread was asleep in the
// kernel (never seen runnable, not waiting for a lock) and made no progress. A slow
// or CPU-starved loop is runnable, so it is not flagged; a lost wakeup is, since
// nothing but the next burst would ever wake the loop. The watchdog then rescues
// the loop with a byte on the pipe, so one run counts every hang.
//
// A few seconds per backend in the suite; the long version by hand:
//   EDDY_WAKEUP_STRESS_SECS=60 build/tests/runtime/runtime_wakeup_stress_test
// EDDY_WAKEUP_STRESS_SEED picks the random streams, EDDY_WAKEUP_STRESS_STUCK_MS the
// threshold.
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

// The shape. Under a sanitizer everything runs several times slower, so fewer
// posters and less work per post keep the loop from saturating.
constexpr std::size_t n_posters = sanitized ? 4 : 8;
constexpr std::uint64_t busy_turns_max =
    sanitized ? 30 : 300;                // turns of work a post hands the loop
constexpr std::uint64_t echo_every = 2;  // every other post: an I/O round trip
constexpr long default_secs = sanitized ? 2 : 4;
constexpr long default_stuck_ms = sanitized ? 200 : 50;

using clock_type = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtol(v, nullptr, 10);
}

// One poster's bookkeeping. Posts of one thread run in the order posted, so the
// oldest pending post of a poster is always number `ran`.
struct poster_state {
  static constexpr std::uint64_t ring = 1u << 14;
  // When each post's call_soon_threadsafe returned: from then on the wakeup (if one
  // was needed) has been sent, so waiting longer is the loop's doing, not ours.
  std::unique_ptr<std::atomic<std::int64_t>[]> returned_at {
    new std::atomic<std::int64_t>[ ring ]
  };
  std::atomic<std::uint64_t> posted{0};  // posts whose call has returned
  std::atomic<std::uint64_t> ran{0};     // written by the loop thread only
  std::atomic<std::uint64_t> out_of_order{0};
};

struct shared_state {
  int write_fd = -1;
  std::atomic<pid_t> loop_tid{0};
  std::atomic<std::uint64_t> progress{0};  // bumped by the loop thread for every read and callback
  std::atomic<std::uint64_t> reads{0};
  std::atomic<std::uint64_t> bursts{0};
  std::atomic<bool> stop_posting{false};
  std::atomic<bool> stop_watchdog{false};
  std::vector<poster_state> posters;
  // Watchdog results.
  std::atomic<std::uint64_t> hangs{
      0};  // times the loop slept with a post pending past the threshold
  std::atomic<std::uint64_t> stuck_posts{0};  // posts pending past the threshold, summed over hangs
  std::atomic<std::int64_t> longest_stuck_ns{0};
  std::string first_hang;  // what the watchdog saw, for the failure message
  // Loop thread only: posts that asked for an I/O round trip, and the task doing them.
  std::uint64_t echo_pending = 0;
  bool echo_stop = false;
  eddy::event echo_wake;
  int echo_w = -1, echo_r = -1;
};

// Some posts hand the loop an I/O round trip (a byte through a second pipe), as
// when a result from another thread is written out: the loop's next waits then end
// on I/O, not on a wakeup, which is where io_uring's wakeup read stays armed.
task<void> echoer(shared_state* s) {
  const std::array<std::byte, 1> one{std::byte{1}};
  std::array<std::byte, 64> buf;
  for (;;) {
    co_await s->echo_wake.wait();
    s->echo_wake.clear();
    while (s->echo_pending != 0) {
      --s->echo_pending;
      co_await eddy::write_all(s->echo_w, one);
      (void)co_await eddy::read(s->echo_r, buf);
    }
    if (s->echo_stop) co_return;
  }
}

// The loop's main task: one read in flight at a time until end of file; every
// other read yields once, so the next iteration reaps without blocking.
task<void> reader(int fd, shared_state* s) {
  s->loop_tid.store(static_cast<pid_t>(::syscall(SYS_gettid)), std::memory_order_release);
  auto echo = eddy::spawn(echoer(s));
  std::array<std::byte, 256> buf;
  for (;;) {
    const std::size_t n = co_await eddy::read(fd, buf);
    if (n == 0) {
      s->echo_stop = true;
      s->echo_wake.set();
      co_await echo;
      co_return;
    }
    const std::uint64_t r = s->reads.fetch_add(1, std::memory_order_relaxed) + 1;
    s->progress.fetch_add(1, std::memory_order_release);
    if (r % 2 == 0) co_await eddy::yield_now();
  }
}

// Work a post hands its loop: `left` more turns with the ready queue non-empty, so
// the iterations right after a post reap without blocking (as when a post resumes
// a task that then does a little work).
void busy_turns(unsigned left) {
  if (left != 0) eddy::loop::current().call_soon([left] { busy_turns(left - 1); });
}

void write_byte(int fd) {
  const char c = 'x';
  for (;;) {
    const ssize_t r = ::write(fd, &c, 1);
    if (r == 1 || (r < 0 && errno != EINTR))
      return;  // EAGAIN: the pipe is full, so the loop has a byte to read anyway
  }
}

// Short bursts of small writes, then a quiet period: some short, some well past
// the watchdog's threshold (a hang shows only while nothing else wakes the loop).
void writer(shared_state* s, std::uint64_t seed, std::int64_t end_ns, std::int64_t stuck_ns) {
  std::mt19937_64 rng(seed);
  auto uni = [&rng](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  std::array<char, 64> data{};
  while (now_ns() < end_ns) {
    const std::int64_t writes = uni(1, 48);
    for (std::int64_t i = 0; i < writes; ++i) {
      const ssize_t r = ::write(s->write_fd, data.data(), static_cast<std::size_t>(uni(1, 64)));
      (void)r;  // EAGAIN (full pipe) is fine: the loop is behind, not asleep
      const std::int64_t gap = uni(0, 3);
      if (gap == 1) std::this_thread::yield();
      if (gap >= 2) std::this_thread::sleep_for(std::chrono::microseconds(uni(1, 60)));
    }
    s->bursts.fetch_add(1, std::memory_order_relaxed);
    const std::int64_t kind = uni(0, 99);
    std::int64_t quiet;
    if (kind < 30) {
      quiet = uni(0, 1'000'000);
    } else if (kind < 60) {
      quiet = uni(1'000'000, 20'000'000);
    } else {
      quiet = stuck_ns + uni(stuck_ns / 2, 3 * stuck_ns);
    }
    const std::int64_t until = std::min(now_ns() + quiet, end_ns);
    while (now_ns() < until)
      std::this_thread::sleep_for(
          std::chrono::nanoseconds(std::min<std::int64_t>(until - now_ns(), 50'000'000)));
  }
}

// Posts at random moments: mostly after a small random sleep (timer slack cut so a
// few microseconds mean a few microseconds), sometimes a few back to back, so posts
// often land while the loop is between deciding to sleep and its wait.
void poster(eddy::loop_handle h, shared_state* s, std::size_t me, std::uint64_t seed) {
  poster_state& p = s->posters[me];
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  std::mt19937_64 rng(seed);
  auto uni = [&rng](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  std::uint64_t seq = 0;
  while (!s->stop_posting.load(std::memory_order_acquire)) {
    if (seq - p.ran.load(std::memory_order_acquire) >= poster_state::ring / 2) {
      // The loop is that far behind (a hang the watchdog is about to see): keep
      // the ring of post times from wrapping.
      std::this_thread::sleep_for(1ms);
      continue;
    }
    const std::int64_t back_to_back = uni(0, 9) == 0 ? uni(2, 4) : 1;
    for (std::int64_t i = 0; i < back_to_back; ++i, ++seq) {
      const bool ok = h.call_soon_threadsafe([s, &p, seq] {
        if (p.ran.load(std::memory_order_relaxed) != seq)
          p.out_of_order.fetch_add(1, std::memory_order_relaxed);
        p.ran.store(seq + 1, std::memory_order_release);
        s->progress.fetch_add(1, std::memory_order_release);
        busy_turns(static_cast<unsigned>(seq % busy_turns_max));
        if (seq % echo_every == 0) {
          ++s->echo_pending;
          s->echo_wake.set();
        }
      });
      if (!ok) return;  // cannot happen: the loop is open until every post ran
      p.returned_at[seq % poster_state::ring].store(now_ns(), std::memory_order_relaxed);
      p.posted.store(seq + 1, std::memory_order_release);
    }
    const std::int64_t pause = uni(0, 99);
    if (pause < 10) {
      std::this_thread::yield();
    } else if (pause < 95) {
      std::this_thread::sleep_for(std::chrono::microseconds(uni(1, 50)));
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(uni(200, 3000)));
    }
  }
}

// The loop thread's scheduler state from /proc: 'S' while it sleeps in its wait,
// 'R' while it runs or waits for a CPU.
char thread_state(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return '?';
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return '?';
  return line[close + 2];
}

std::string thread_syscall(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/syscall");
  std::string line;
  std::getline(f, line);
  return line.substr(0, line.find(' ', line.find(' ') + 1));
}

// A loop thread waiting for a lock (say, the allocator's, held by a preempted
// poster) is not waiting for a wakeup.
bool in_futex(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long nr = -1;
  return (f >> nr) && nr == SYS_futex;
}

struct pending_view {
  std::uint64_t pending = 0;     // posts returned and not run
  std::int64_t oldest_ns = 0;    // when the oldest of them returned (0: none)
  std::uint64_t older_than = 0;  // how many returned before the cut-off
};

pending_view look_at_posts(shared_state* s, std::int64_t cutoff_ns) {
  pending_view v;
  for (poster_state& p : s->posters) {
    const std::uint64_t ran = p.ran.load(std::memory_order_acquire);
    const std::uint64_t posted = p.posted.load(std::memory_order_acquire);
    if (posted <= ran) continue;
    v.pending += posted - ran;
    const std::int64_t t = p.returned_at[ran % poster_state::ring].load(std::memory_order_relaxed);
    if (v.oldest_ns == 0 || t < v.oldest_ns) v.oldest_ns = t;
    for (std::uint64_t i = ran; i < posted; ++i) {
      if (p.returned_at[i % poster_state::ring].load(std::memory_order_relaxed) <= cutoff_ns)
        ++v.older_than;
    }
  }
  return v;
}

// A hang: a post returned more than `stuck_ns` ago and has not run, and for all of
// that time the loop made no progress and was never seen runnable (sampled every
// millisecond or two). A loop that is merely slow or starved of CPU is runnable.
void watchdog(shared_state* s, std::int64_t stuck_ns) {
  pid_t tid = 0;
  while ((tid = s->loop_tid.load(std::memory_order_acquire)) == 0 &&
         !s->stop_watchdog.load(std::memory_order_acquire)) {
    std::this_thread::sleep_for(1ms);
  }
  std::uint64_t last_progress = s->progress.load(std::memory_order_acquire);
  std::int64_t calm_since = now_ns();  // no progress and not runnable since
  while (!s->stop_watchdog.load(std::memory_order_acquire)) {
    std::this_thread::sleep_for(1ms);
    const std::int64_t now = now_ns();
    const std::uint64_t prog = s->progress.load(std::memory_order_acquire);
    const char state = thread_state(tid);
    if (prog != last_progress || state != 'S' || in_futex(tid)) {
      last_progress = prog;
      calm_since = now;
      continue;
    }
    const pending_view v = look_at_posts(s, now - stuck_ns);
    if (v.pending == 0 || now - v.oldest_ns <= stuck_ns || now - calm_since <= stuck_ns) continue;
    // Read the state again now that the posts were looked at: still asleep, still
    // no progress.
    if (thread_state(tid) != 'S' || s->progress.load(std::memory_order_acquire) != prog) continue;
    const std::int64_t age = now - v.oldest_ns;
    if (s->hangs.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::ostringstream o;
      o << v.pending << " posts pending, the oldest " << age / 1'000'000
        << " ms after its call returned; loop thread state " << state << ", in syscall "
        << thread_syscall(tid) << ", no progress for " << (now - calm_since) / 1'000'000 << " ms";
      s->first_hang = o.str();
    }
    s->stuck_posts.fetch_add(v.older_than, std::memory_order_relaxed);
    if (age > s->longest_stuck_ns.load(std::memory_order_relaxed))
      s->longest_stuck_ns.store(age, std::memory_order_relaxed);
    // Rescue: I/O wakes the loop, which then runs the pending posts. Count this
    // hang once: wait for the loop to move before looking again.
    write_byte(s->write_fd);
    const std::int64_t give_up = now_ns() + 5'000'000'000;
    while (s->progress.load(std::memory_order_acquire) == prog && now_ns() < give_up)
      std::this_thread::sleep_for(1ms);
    last_progress = s->progress.load(std::memory_order_acquire);
    calm_since = now_ns();
  }
}

class wakeup_stress_test : public eddy_test::loop_test {};

}  // namespace

TEST_P(wakeup_stress_test, no_post_is_left_pending_while_the_loop_sleeps) {
  const long secs = env_long("EDDY_WAKEUP_STRESS_SECS", default_secs);
  const std::int64_t stuck_ns =
      env_long("EDDY_WAKEUP_STRESS_STUCK_MS", default_stuck_ms) * 1'000'000;
  const auto seed = static_cast<std::uint64_t>(env_long("EDDY_WAKEUP_STRESS_SEED", 8));

  shared_state s;
  s.posters = std::vector<poster_state>(n_posters);
  std::pair<eddy::unique_fd, eddy::unique_fd> pipe = eddy::make_pipe();
  eddy::unique_fd rd = std::move(pipe.first);
  eddy::unique_fd wr = std::move(pipe.second);
  s.write_fd = wr.get();
  std::pair<eddy::unique_fd, eddy::unique_fd> echo_pipe = eddy::make_pipe();
  s.echo_r = echo_pipe.first.get();
  s.echo_w = echo_pipe.second.get();
  eddy::loop_handle h = lp().handle();

  // The driver: stresses for `secs`, then lets every post run (the watchdog still
  // rescuing), then closes the write end so the reader sees end of file.
  bool all_ran = false;
  std::thread driver([&] {
    std::thread dog(watchdog, &s, stuck_ns);
    std::vector<std::thread> posters;
    for (std::size_t i = 0; i < n_posters; ++i)
      posters.emplace_back(poster, h, &s, i, seed * 1000 + i + 1);
    const std::int64_t end = now_ns() + secs * 1'000'000'000;
    writer(&s, seed * 1000, end, stuck_ns);
    s.stop_posting.store(true, std::memory_order_release);
    for (auto& t : posters) t.join();
    const std::int64_t give_up = now_ns() + 10 * stuck_ns + 5'000'000'000;
    for (;;) {
      bool done = true;
      for (poster_state& p : s.posters) {
        if (p.ran.load(std::memory_order_acquire) != p.posted.load(std::memory_order_acquire))
          done = false;
      }
      if (done || now_ns() > give_up) {
        all_ran = done;
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
    s.stop_watchdog.store(true, std::memory_order_release);
    dog.join();
    wr.reset();  // end of file: the reader returns and run() with it
  });
  std::string error;
  try {
    run(reader(rd.get(), &s));
  } catch (const std::exception& e) {
    error = e.what();
    s.stop_posting.store(true);  // the driver still ends on its own after `secs`
  }
  driver.join();
  ASSERT_EQ(error, "") << "the reader failed";
  rd.reset();
  echo_pipe.first.reset();
  echo_pipe.second.reset();

  std::uint64_t posts = 0, out_of_order = 0;
  for (poster_state& p : s.posters) {
    posts += p.posted.load();
    out_of_order += p.out_of_order.load();
  }
  const std::string name(lp().backend_name());
  std::printf(
      "[ wakeup   ] %s: %ld s, %llu posts, %llu bursts, %llu reads, %llu wakeups; %llu hangs, %llu "
      "posts stuck > %lld ms "
      "(longest %lld ms)\n",
      name.c_str(), secs, static_cast<unsigned long long>(posts),
      static_cast<unsigned long long>(s.bursts.load()),
      static_cast<unsigned long long>(s.reads.load()),
      static_cast<unsigned long long>(lp().stats().wakeups),
      static_cast<unsigned long long>(s.hangs.load()),
      static_cast<unsigned long long>(s.stuck_posts.load()),
      static_cast<long long>(stuck_ns / 1'000'000),
      static_cast<long long>(s.longest_stuck_ns.load() / 1'000'000));
  std::fflush(stdout);

  EXPECT_TRUE(all_ran) << "posts never ran after the stress ended";
  EXPECT_EQ(out_of_order, 0u) << "one thread's posts ran out of order";
  EXPECT_GT(posts, 0u);
  EXPECT_EQ(s.hangs.load(), 0u) << "lost wakeups: the loop slept with a post pending ("
                                << s.stuck_posts.load() << " posts stuck; first: " << s.first_hang
                                << ")";
}

EDDY_BACKEND_TEST_SUITE(wakeup_stress_test);
