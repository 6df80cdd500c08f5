// The stall detector (loop_options::stall_threshold, EDDY_STALL_MS).
//
// Why a watchdog thread and wall time, not Seastar's per-thread CPU-time timer:
// what a stalled loop costs its users is latency, and a callback that blocks in a
// system call (a synchronous DNS lookup, a read of a slow file, a lock) stalls
// the loop without using CPU: a CPU-time timer never fires for it. A watchdog
// sees both. The price is that a loop thread the kernel descheduled for longer
// than the threshold is reported too (rare at Seastar's 25 ms unless the machine
// is oversubscribed, and then worth knowing).
//
// Protocol:
//  1. The loop publishes, with relaxed stores of its own thread, a heartbeat
//     (`progress_`, the count of callbacks run: a store per callback) and a phase
//     (`phase_`: 0 not running, 1 running, 2 blocked in the kernel or watching for
//     cross-thread work). Nothing else is done per callback, armed or not.
//  2. One watchdog thread per process, started by the first armed loop and joined
//     when the last one is disarmed, samples every armed loop every threshold/4
//     (at least every 1 ms). A loop is stalled when it is running (phase 1) and its
//     heartbeat has not moved for `threshold`, counted from the sample that first
//     saw the current value (so the time reported is a lower bound, short by at
//     most one sampling period).
//  3. Once per stall (per heartbeat value) it sends the loop thread a real-time
//     signal (SIGRTMIN+6). The handler, on the loop thread, checks it is the target
//     and records raw return addresses with backtrace(3) into a static buffer; the
//     watchdog waits for them (up to 200 ms), then symbolizes and demangles them on
//     its own thread. backtrace() is not formally async-signal-safe only because
//     its first call loads the unwinder (malloc, dlopen); stall_arm calls it once
//     beforehand, as glibc's manual advises.
//  4. Reports are rate-limited to one per loop per second; the next report counts
//     the stalls left out.
#include <cxxabi.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/loop_metrics.hpp"

namespace eddy {

namespace detail {

class stall_entry {
 public:
  stall_entry(loop& l, std::int64_t threshold_ns, std::function<void(const stall_report&)> report)
      : l_(l), threshold_ns_(threshold_ns), report_(std::move(report)) {}
  ~stall_entry();
  std::uint64_t stalls() const noexcept { return stalls_.load(std::memory_order_relaxed); }
  void sample(std::int64_t now_ns);

  loop& l_;
  const std::int64_t threshold_ns_;
  std::function<void(const stall_report&)> report_;
  // The watchdog's own state (touched only with the registry's mutex held).
  std::uint64_t last_progress_ = ~std::uint64_t{0};
  std::int64_t first_seen_ns_ = 0;
  std::int64_t last_report_ns_ = -1'000'000'000'000;
  std::uint64_t suppressed_ = 0;
  bool reported_ = false;
  std::atomic<std::uint64_t> stalls_{0};
};

namespace {

constexpr int max_frames = 64;

int stall_signal() noexcept { return SIGRTMIN + 6; }

// The capture in progress (one at a time: the watchdog is a single thread).
std::atomic<int> capture_tid{0};
std::atomic<int> captured_frames{-1};
void* capture_buf[max_frames];

void on_stall_signal(int, siginfo_t*, void*) {
  const int saved = errno;
  if (static_cast<int>(::syscall(SYS_gettid)) == capture_tid.load(std::memory_order_acquire)) {
    const int n = ::backtrace(capture_buf, max_frames);
    captured_frames.store(n, std::memory_order_release);
  }
  errno = saved;
}

std::int64_t mono_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// "binary(_ZN3foo3barEv+0x1c) [0x55...]" -> "binary(foo::bar()+0x1c) [0x55...]"
std::string demangle_frame(const char* sym) {
  std::string s(sym);
  const auto open = s.find('(');
  const auto plus = s.find('+', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || plus == std::string::npos || plus == open + 1) return s;
  const std::string mangled = s.substr(open + 1, plus - open - 1);
  int status = 0;
  char* d = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
  if (status == 0 && d != nullptr) s = s.substr(0, open + 1) + d + s.substr(plus);
  std::free(d);
  return s;
}

struct registry {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<stall_entry*> entries;
  std::thread watchdog;
  // A watchdog runs while `generation` is the one it was started with: the last
  // disarm bumps it (and joins the thread), so a watchdog started by a later arm
  // never shares the work with one still on its way out.
  std::uint64_t generation = 0;
  bool handler_installed = false;

  void run(std::uint64_t mine) {
    std::unique_lock lk(mu);
    while (generation == mine) {
      std::int64_t period = 1'000'000'000;
      for (stall_entry* e : entries) period = std::min(period, e->threshold_ns_ / 4);
      period = std::max<std::int64_t>(period, 1'000'000);
      cv.wait_for(lk, std::chrono::nanoseconds(period));
      if (generation != mine) break;
      const std::int64_t now = mono_ns();
      for (stall_entry* e : entries) e->sample(now);
    }
  }
};

registry& reg() {
  static registry* r = new registry;  // never destroyed: loops may outlive statics
  return *r;
}

std::vector<std::string> capture(int tid) {
  captured_frames.store(-1, std::memory_order_relaxed);
  capture_tid.store(tid, std::memory_order_release);
  std::vector<std::string> out;
  if (::syscall(SYS_tgkill, ::getpid(), tid, stall_signal()) != 0) return out;
  const std::int64_t give_up = mono_ns() + 200'000'000;
  int n = -1;
  while ((n = captured_frames.load(std::memory_order_acquire)) < 0 && mono_ns() < give_up)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  capture_tid.store(0, std::memory_order_release);
  if (n <= 0) return out;
  char** syms = ::backtrace_symbols(capture_buf, n);
  if (syms == nullptr) return out;
  // Frames 0 and 1 are the handler and the kernel's signal trampoline.
  for (int i = 2; i < n; ++i) out.push_back(demangle_frame(syms[i]));
  std::free(syms);
  return out;
}

}  // namespace

void stall_entry::sample(std::int64_t now) {
  const int phase = l_.phase_.load(std::memory_order_acquire);
  const std::uint64_t progress = l_.progress_.load(std::memory_order_relaxed);
  if (phase != 1 || progress != last_progress_) {
    last_progress_ = progress;
    first_seen_ns_ = now;
    reported_ = false;
    return;
  }
  if (reported_ || now - first_seen_ns_ < threshold_ns_) return;
  reported_ = true;
  stalls_.fetch_add(1, std::memory_order_relaxed);
  if (now - last_report_ns_ < 1'000'000'000) {
    ++suppressed_;
    return;
  }
  last_report_ns_ = now;
  stall_report r;
  r.loop_id = l_.id();
  r.thread_id = l_.tid_.load(std::memory_order_relaxed);
  r.threshold = std::chrono::milliseconds(threshold_ns_ / 1'000'000);
  r.suppressed = std::exchange(suppressed_, 0);
  r.backtrace = capture(r.thread_id);
  // The stack is the stall's only if the loop is still on the same callback.
  if (l_.progress_.load(std::memory_order_relaxed) != progress) r.backtrace.clear();
  r.stalled = std::chrono::milliseconds((mono_ns() - first_seen_ns_) / 1'000'000);
  try {
    if (report_) report_(r);
    else std::fputs(r.text().c_str(), stderr);
  } catch (...) {
    std::fputs("eddy: the stall report handler threw\n", stderr);
  }
}

stall_entry::~stall_entry() {
  registry& r = reg();
  std::thread done;
  {
    std::lock_guard lk(r.mu);
    r.entries.erase(std::remove(r.entries.begin(), r.entries.end(), this), r.entries.end());
    if (r.entries.empty() && r.watchdog.joinable()) {
      ++r.generation;
      done = std::move(r.watchdog);
    }
  }
  r.cv.notify_all();
  if (done.joinable()) done.join();
}

std::uint64_t stall_count(const stall_entry* e) noexcept { return e != nullptr ? e->stalls() : 0; }

std::shared_ptr<stall_entry> stall_arm(loop& l, const loop_options& o) {
  std::chrono::milliseconds t = o.stall_threshold;
  if (t.count() == -1) {
    const char* env = std::getenv("EDDY_STALL_MS");
    if (env == nullptr || *env == '\0') return nullptr;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(env, &end, 10);
    if (errno != 0 || end == env || *end != '\0' || v < 0 || v > 60000)
      throw std::invalid_argument(std::string("EDDY_STALL_MS must be a whole number of milliseconds in 0..60000, got '") +
                                  env + "'");
    t = std::chrono::milliseconds(v);
  } else if (t.count() < 0 || t.count() > 60000) {
    throw std::invalid_argument("eddy::loop_options::stall_threshold must be -1 (EDDY_STALL_MS), 0 (off) or 1..60000 ms, got " +
                                std::to_string(t.count()) + " ms");
  }
  if (t.count() == 0) return nullptr;
  {
    // Loads the unwinder now, outside any signal handler (see step 3 above).
    void* warm[4];
    (void)::backtrace(warm, 4);
  }
  auto e = std::make_shared<stall_entry>(l, static_cast<std::int64_t>(t.count()) * 1'000'000, o.on_stall);
  registry& r = reg();
  std::lock_guard lk(r.mu);
  if (!r.handler_installed) {
    struct sigaction sa {};
    sa.sa_sigaction = &on_stall_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(stall_signal(), &sa, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(), "eddy: stall detector: sigaction");
    r.handler_installed = true;
  }
  r.entries.push_back(e.get());
  if (!r.watchdog.joinable()) {
    // The watchdog takes no signal: a program that blocks SIGTERM to read it from a
    // signalfd (eddy::signal_set) after this loop was made must not have it
    // delivered to this thread instead (default action: the process dies).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r.watchdog = std::thread([&r, g = r.generation] { r.run(g); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  r.cv.notify_all();
  return e;
}

}  // namespace detail

std::string stall_report::text() const {
  char head[256];
  std::snprintf(head, sizeof head,
                "eddy: loop %u (thread %d) stalled for %lld ms in one callback or task step "
                "(threshold %lld ms)%s",
                loop_id, thread_id, static_cast<long long>(stalled.count()),
                static_cast<long long>(threshold.count()), backtrace.empty() ? "; it moved on before a backtrace" : ":");
  std::string s = head;
  if (suppressed != 0) s += " [" + std::to_string(suppressed) + " earlier stall(s) not reported]";
  s += '\n';
  for (std::size_t i = 0; i < backtrace.size(); ++i) s += "  #" + std::to_string(i) + " " + backtrace[i] + "\n";
  return s;
}

}  // namespace eddy
