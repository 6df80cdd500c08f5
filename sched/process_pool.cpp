// The parent side of process_pool: dispatch, supervision, cancellation.
//
// Everything here runs on the pool's loop thread; nothing is locked.
//
// Objects:
// - process_pool_core: the helpers (`slots`), the calls waiting for a helper (`queue`).
//   Owned by the process_pool and by every task working for it (readers, writers,
//   calls in progress), so it lives until the last of them is done.
// - pp_helper_slot: one helper process, its channel, and its `flights`: the calls sent
//   to it, oldest first. A helper answers in order, so a reply always belongs to
//   flights.front(), and only flights.front() can have started running.
// - pp_pending_call: one call, in the frame of the coroutine awaiting it. It is in
//   exactly one place: the queue, one slot's flights, or finished.
//
// A call's life:
//  1. submit: queued; pump() hands it to the least-loaded ready helper with room
//     (max_in_flight), appends a flight and writes its frame (non-blocking send; a
//     writer task finishes what the socket did not take).
//  2. The helper's reader task reads the reply and finishes the call.
//  3. The helper dies (EOF on the channel, or a protocol violation): the reader kills
//     and reaps it, fails flights.front() with worker_crashed if it had been sent,
//     puts the other flights' calls back at the head of the queue (they never ran)
//     and starts a replacement.
//  Cancellation: a queued call leaves the queue; a flight not yet written leaves the
//  flights; flights.front() once written is running, so its helper is killed (step
//  3 then starts a replacement); any other written flight is abandoned (its reply is
//  dropped) -- and if it was half written, the rest of its bytes are copied so the
//  stream stays well-formed after the caller's frame is gone.
//
// Start-up: a helper is `starting` until its hello arrives (then `ready`). One that
// dies first, or misses start_timeout, is a start failure; max_start_failures in a
// row (reset by any hello) stop replacements, and once no helper is alive every
// waiting or new call fails with worker_crashed saying why.
//
// Transport choice (measured on this project's 2-core VM, 64 B / 64 KiB ping-pong
// between two processes over a socketpair, p50): both sides blocking 61 / 67 µs;
// helper spinning 50 µs before blocking 20 / 28 µs; both spinning 5 / 19 µs. The
// cost is waking an idle core, not copying, so a shared-memory ring would save
// little and needs the same wakeups; the loop thread must not spin, the helper may.
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <eddy/io/fd.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/sched/process_pool.hpp>
#include <span>
#include <system_error>
#include <thread>

#include "helper_process.hpp"
#include "helper_protocol.hpp"
#include "pending_call.hpp"
#include "remote_invoke.hpp"

namespace eddy::detail {

namespace proto = helper_protocol;

namespace {
std::int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

struct pp_pending_call;

struct pp_flight {
  std::uint64_t id = 0;
  pp_pending_call* call = nullptr;  // nullptr: abandoned by a cancelled caller
  const char* data = nullptr;
  std::size_t size = 0;
  std::size_t written = 0;
  std::vector<char> owned;  // unsent rest of an abandoned, half-written frame
};

struct pp_helper_slot {
  enum class state { starting, ready, dead };
  helper_process proc;
  state st = state::starting;
  std::deque<pp_flight> flights;
  std::size_t write_at = 0;  // first pp_flight not completely written
  bool writer_active = false;
  bool kill_requested = false;  // killed on purpose (cancel, timeout, shutdown)
  bool start_timed_out = false;
  timer_handle start_timer;
};

enum class pp_outcome { pending, result, raised, rejected, crashed, cancelled };

struct pp_pending_call : pending_call<pp_pending_call, pp_outcome> {
  process_pool_core* core = nullptr;
  const remote_entry* entry = nullptr;
  std::vector<char> frame;
  std::vector<char> body;
  std::string message;
  pp_helper_slot* slot = nullptr;
  bool queued = false;
  std::int64_t submitted_ns = 0;  // process_pool_stats::queue_wait, run_time
  std::int64_t sent_ns = 0;

  pp_pending_call()
      : pending_call([](const cancel_hook*, wait_description& d) noexcept {
          d.kind = "a process pool call";
        }) {}
  // A frame destroyed while its call is still pending (not normally reachable: a
  // closing loop cancels and resumes every task) must not leave pointers to itself.
  ~pp_pending_call();
};

class process_pool_core : public std::enable_shared_from_this<process_pool_core> {
 public:
  process_pool_core(loop& l, const process_pool_options& o) : l_(&l), opts_(o) {
    launch_.max_message = o.max_message_size;
    launch_.rlimit_as = o.memory_limit;
    launch_.rlimit_cpu = o.cpu_time_limit;
    launch_.spin_us = static_cast<long>(o.helper_spin.count());
  }

  void start_helper();
  void submit(pp_pending_call* c);
  void cancel(pp_pending_call* c) noexcept;
  void close() noexcept;
  process_pool_stats stats() const noexcept;
  std::vector<pid_t> pids() const;
  std::uint64_t max_message() const noexcept { return opts_.max_message_size; }

  // For the reader and writer tasks.
  void on_hello(pp_helper_slot& s, std::span<const char> body);
  void on_reply(pp_helper_slot& s, const proto::header& h, std::span<const char> body);
  void on_death(pp_helper_slot& s, bool was_ready);
  enum class flush_result { done, blocked, failed };
  flush_result flush(pp_helper_slot& s) noexcept;
  void pump() noexcept;
  bool closed() const noexcept { return closed_; }
  void mark_closing() noexcept { closed_ = true; }
  // Reader and writer tasks alive; shutdown() waits for zero.
  void task_started() noexcept { ++tasks_; }
  void task_finished() noexcept;
  std::size_t tasks() const noexcept { return tasks_; }
  struct idle_waiter {
    std::coroutine_handle<> h;
    task_core* core;
  };
  std::vector<idle_waiter>& idle_waiters() noexcept { return idle_waiters_; }
  loop& event_loop() noexcept { return *l_; }

 private:
  void finish(pp_pending_call* c, pp_outcome o, std::string message = {}) noexcept;
  void fail_queue(const std::string& why) noexcept;
  bool any_alive() const noexcept;
  void start_writer(const std::shared_ptr<pp_helper_slot>& s);
  std::shared_ptr<pp_helper_slot> find(pp_helper_slot* s) const noexcept;

  loop* l_;
  process_pool_options opts_;
  helper_launch launch_;
  std::vector<std::shared_ptr<pp_helper_slot>> slots_;
  std::deque<pp_pending_call*> queue_;
  std::uint64_t next_id_ = 1;
  std::uint64_t started_ = 0;
  std::uint64_t died_ = 0;
  latency_histogram waits_, runs_;
  unsigned start_failures_ = 0;
  std::string last_start_failure_;
  bool broken_ = false;
  bool closed_ = false;
  std::size_t tasks_ = 0;
  std::vector<idle_waiter> idle_waiters_;
};

void process_pool_core::task_finished() noexcept {
  if (--tasks_ != 0) return;
  for (const idle_waiter& w : std::exchange(idle_waiters_, {})) detail::loop_schedule(*l_, w.core, w.h);
}

// ---- cancellation --------------------------------------------------------------

namespace {
void record(latency_histogram& h, std::int64_t ns) noexcept {
  const auto d = static_cast<std::uint64_t>(ns > 0 ? ns : 0);
  ++h.count;
  h.sum_ns += d;
  if (d > h.max_ns) h.max_ns = d;
  ++h.hist[latency_histogram::bucket_of(d)];
}
}  // namespace

void process_pool_core::finish(pp_pending_call* c, pp_outcome o, std::string message) noexcept {
  if ((o == pp_outcome::result || o == pp_outcome::raised || o == pp_outcome::rejected) && c->sent_ns != 0) {
    record(waits_, c->sent_ns - c->submitted_ns);
    record(runs_, steady_now_ns() - c->sent_ns);
  }
  c->message = std::move(message);
  c->slot = nullptr;
  c->queued = false;
  c->settle(*l_, o);
}

pp_pending_call::~pp_pending_call() {
  if (out == pp_outcome::pending && core != nullptr && (queued || slot != nullptr)) {
    suspended = false;  // nothing to resume
    core->cancel(this);
  }
}

void process_pool_core::cancel(pp_pending_call* c) noexcept {
  if (c->queued) {
    queue_.erase(std::find(queue_.begin(), queue_.end(), c));
  } else if (pp_helper_slot* s = c->slot) {
    auto it = std::find_if(s->flights.begin(), s->flights.end(),
                           [c](const pp_flight& f) { return f.call == c; });
    if (it != s->flights.end()) {
      const auto idx = static_cast<std::size_t>(it - s->flights.begin());
      if (it->written == 0) {
        s->flights.erase(it);  // never reached the helper
        if (idx < s->write_at) --s->write_at;
      } else if (idx == 0) {
        // Possibly running: killing the helper is the only way to stop it. The reader
        // sees EOF, reaps it and starts a replacement.
        it->call = nullptr;
        it->data = nullptr;
        s->kill_requested = true;
        s->proc.kill();
      } else {
        if (it->written < it->size) {
          it->owned.assign(it->data + it->written, it->data + it->size);
          it->data = it->owned.data();
          it->size = it->owned.size();
          it->written = 0;
        } else {
          it->data = nullptr;
        }
        it->call = nullptr;
      }
    }
  }
  finish(c, pp_outcome::cancelled);
  pump();
}

// ---- dispatch ---------------------------------------------------------------

void process_pool_core::submit(pp_pending_call* c) {
  if (closed_) {
    finish(c, pp_outcome::crashed, "the process_pool was shut down");
    return;
  }
  if (broken_ && !any_alive()) {
    finish(c, pp_outcome::crashed, last_start_failure_);
    return;
  }
  c->queued = true;
  c->submitted_ns = steady_now_ns();
  queue_.push_back(c);
  pump();
}

void process_pool_core::pump() noexcept {
  while (!queue_.empty()) {
    std::shared_ptr<pp_helper_slot> best;
    for (const auto& s : slots_) {
      // A helper being killed takes nothing new: it would only be re-queued.
      if (s->st != pp_helper_slot::state::ready || s->kill_requested ||
          s->flights.size() >= opts_.max_in_flight)
        continue;
      if (!best || s->flights.size() < best->flights.size()) best = s;
    }
    if (!best) break;
    pp_pending_call* c = queue_.front();
    queue_.pop_front();
    c->queued = false;
    c->slot = best.get();
    c->sent_ns = steady_now_ns();
    const std::uint64_t id = next_id_++;
    std::memcpy(c->frame.data() + offsetof(proto::header, id), &id, sizeof id);
    best->flights.push_back({id, c, c->frame.data(), c->frame.size(), 0, {}});
    if (flush(*best) == flush_result::blocked) start_writer(best);
  }
}

process_pool_core::flush_result process_pool_core::flush(pp_helper_slot& s) noexcept {
  while (s.write_at < s.flights.size()) {
    pp_flight& f = s.flights[s.write_at];
    const ssize_t n = ::send(s.proc.channel(), f.data + f.written, f.size - f.written,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      f.written += static_cast<std::size_t>(n);
      if (f.written == f.size) {
        ++s.write_at;
        if (f.call == nullptr) {
          f.owned = {};
          f.data = nullptr;
        }
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return flush_result::blocked;
    return flush_result::failed;  // EPIPE, ECONNRESET: the reader will report the death
  }
  return flush_result::done;
}

task<void> pp_writer(std::shared_ptr<process_pool_core> core, std::shared_ptr<pp_helper_slot> s) {
  s->writer_active = true;
  while (s->st != pp_helper_slot::state::dead && s->write_at < s->flights.size()) {
    try {
      co_await eddy::poll(s->proc.channel(), POLLOUT);
    } catch (...) {
      break;  // cancelled (loop closing) or the channel failed: the reader handles it
    }
    if (s->st == pp_helper_slot::state::dead) break;
    if (core->flush(*s) == process_pool_core::flush_result::failed) break;
  }
  s->writer_active = false;
  core->task_finished();
}

void process_pool_core::start_writer(const std::shared_ptr<pp_helper_slot>& s) {
  if (s->writer_active) return;
  s->writer_active = true;
  try {
    l_->spawn(pp_writer(shared_from_this(), s)).detach();
    task_started();
  } catch (...) {
    // Cannot happen short of the loop closing; the helper is then reaped on close.
    s->writer_active = false;
    s->kill_requested = true;
    s->proc.kill();
  }
}

// ---- replies and deaths --------------------------------------------------------

void process_pool_core::on_hello(pp_helper_slot& s, std::span<const char> body) {
  const helper_hello h = parse_hello(body);
  if (h.version != proto::version || h.fingerprint != registry_fingerprint())
    throw std::runtime_error("it runs a different build of the program (registry mismatch)");
  s.st = pp_helper_slot::state::ready;
  s.start_timer.cancel();
  start_failures_ = 0;
  pump();
}

void process_pool_core::on_reply(pp_helper_slot& s, const proto::header& h,
                                 std::span<const char> body) {
  if (s.flights.empty() || s.flights.front().id != h.id || s.write_at == 0)
    throw std::runtime_error("it answered a call that was not sent");
  pp_flight f = std::move(s.flights.front());
  s.flights.pop_front();
  --s.write_at;
  if (pp_pending_call* c = f.call) {
    c->body.assign(body.begin(), body.end());
    switch (static_cast<proto::kind>(h.kind_)) {
      case proto::kind::result:
        finish(c, pp_outcome::result);
        break;
      case proto::kind::raised:
        finish(c, pp_outcome::raised);
        break;
      default:
        finish(c, pp_outcome::rejected);
        break;
    }
  }
  pump();
}

void process_pool_core::on_death(pp_helper_slot& s, bool was_ready) {
  ++died_;
  std::erase_if(slots_, [&s](const std::shared_ptr<pp_helper_slot>& p) { return p.get() == &s; });
  s.st = pp_helper_slot::state::dead;
  s.start_timer.cancel();
  const std::string how =
      s.proc.describe() + (s.start_timed_out ? " after missing its start_timeout" : "");
  std::vector<pp_pending_call*> retry;
  for (std::size_t i = 0; i < s.flights.size(); ++i) {
    pp_flight& f = s.flights[i];
    if (f.call == nullptr) continue;
    if (i == 0 && f.written > 0)
      finish(f.call, pp_outcome::crashed, how + " while running '" + f.call->entry->name + "'");
    else
      retry.push_back(f.call);
  }
  s.flights.clear();
  s.write_at = 0;
  for (auto it = retry.rbegin(); it != retry.rend(); ++it) {
    (*it)->slot = nullptr;
    (*it)->queued = true;
    queue_.push_front(*it);
  }
  if (closed_) {
    fail_queue("the process_pool was shut down");
    return;
  }
  if (!was_ready) {
    ++start_failures_;
    last_start_failure_ = how + " before it was ready (" + std::to_string(start_failures_) +
                          " start failure(s) in a row; does main() call "
                          "eddy::process_pool::helper_main_if_requested(argc, argv) first?)";
  }
  if (start_failures_ >= opts_.max_start_failures) {
    broken_ = true;
  } else {
    try {
      start_helper();
    } catch (const std::exception& e) {
      ++start_failures_;
      last_start_failure_ = std::string("cannot start a helper: ") + e.what();
      broken_ = start_failures_ >= opts_.max_start_failures;
    }
  }
  if (broken_ && !any_alive()) fail_queue(last_start_failure_);
  pump();
}

void process_pool_core::fail_queue(const std::string& why) noexcept {
  while (!queue_.empty()) {
    pp_pending_call* c = queue_.front();
    queue_.pop_front();
    finish(c, pp_outcome::crashed, why);
  }
}

bool process_pool_core::any_alive() const noexcept {
  return std::any_of(slots_.begin(), slots_.end(),
                     [](const auto& s) { return s->st != pp_helper_slot::state::dead; });
}

// Buffered frame reading from one helper's channel.
class pp_frame_reader {
 public:
  explicit pp_frame_reader(int fd) : fd_(fd), buf_(base) {}

  /// Buffers at least `need` bytes; false on EOF or a read error.
  task<bool> fill(std::size_t need) {
    if (buf_.size() - begin_ < need) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      if (buf_.size() < need) buf_.resize(need);
    }
    while (end_ - begin_ < need) {
      std::size_t n = 0;
      try {
        n = co_await eddy::read(
            fd_, {reinterpret_cast<std::byte*>(buf_.data() + end_), buf_.size() - end_});
      } catch (const std::system_error&) {
        co_return false;
      }
      if (n == 0) co_return false;
      end_ += n;
    }
    co_return true;
  }
  const char* data() const noexcept { return buf_.data() + begin_; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) {
      begin_ = end_ = 0;
      if (buf_.size() > 4 * base) buf_.assign(base, 0);  // do not keep a 16 MiB buffer
    }
  }

 private:
  static constexpr std::size_t base = 64 * 1024;
  int fd_;
  std::vector<char> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// Reads frames from one helper until its channel ends, then buries it.
task<void> pp_reader(std::shared_ptr<process_pool_core> core, std::shared_ptr<pp_helper_slot> s) {
  pp_frame_reader in(s->proc.channel());
  bool was_ready = false;
  bool cancelled = false;
  try {
    for (;;) {
      if (!co_await in.fill(sizeof(proto::header))) break;
      proto::header h;
      std::memcpy(&h, in.data(), sizeof h);
      const bool hello = h.kind_ == static_cast<std::uint32_t>(proto::kind::hello);
      const bool reply = h.kind_ >= static_cast<std::uint32_t>(proto::kind::result) &&
                         h.kind_ <= static_cast<std::uint32_t>(proto::kind::rejected);
      // Results are bounded by max_message; errors carry at most ~128 KiB of text.
      if (h.magic_ != proto::magic || !(hello || reply) ||
          h.length > core->max_message() + (std::uint64_t{256} << 10) ||
          hello != (s->st == pp_helper_slot::state::starting))
        break;  // protocol violation: treated as a crash
      const std::size_t total = sizeof h + h.length;
      if (!co_await in.fill(total)) break;
      std::span<const char> body(in.data() + sizeof h, h.length);
      try {
        if (hello) {
          core->on_hello(*s, body);
          was_ready = true;
        } else {
          core->on_reply(*s, h, body);
        }
      } catch (const std::exception&) {
        break;
      }
      in.consume(total);
    }
  } catch (const cancelled_error&) {
    cancelled = true;  // the loop is closing
  }
  s->st = pp_helper_slot::state::dead;
  s->proc.kill();
  if (!cancelled) {
    try {
      co_await eddy::poll(s->proc.pidfd(), POLLIN);
    } catch (const cancelled_error&) {
      cancelled = true;
    } catch (...) {
    }
  }
  if (cancelled) core->mark_closing();
  // SIGKILLed above, so this returns at once. The channel stays open until the
  // writer task (if any) has let go of the slot.
  s->proc.reap_blocking();
  core->on_death(*s, was_ready);
  core->task_finished();
}

void process_pool_core::start_helper() {
  auto s = std::make_shared<pp_helper_slot>();
  s->proc = helper_process::spawn(launch_);
  s->proc.set_loop(l_);
  ++started_;
  slots_.push_back(s);
  std::weak_ptr<pp_helper_slot> weak = s;
  s->start_timer = l_->call_later(opts_.start_timeout, [weak] {
    if (auto p = weak.lock(); p && p->st == pp_helper_slot::state::starting) {
      p->start_timed_out = true;
      p->proc.kill();
    }
  });
  l_->spawn(pp_reader(shared_from_this(), s)).detach();
  task_started();
}

void process_pool_core::close() noexcept {
  if (closed_) return;
  closed_ = true;
  fail_queue("the process_pool was shut down");
  for (const auto& s : slots_) {
    s->start_timer.cancel();
    if (s->flights.empty()) {
      ::shutdown(s->proc.channel(), SHUT_WR);  // EOF: the helper exits by itself
    } else {
      s->kill_requested = true;
      s->proc.kill();
    }
  }
}

namespace {

// A helper that has exited but whose reader task has not run yet (it learns of the
// death on a later turn of the loop): a snapshot must not show it alive. A poll of
// its pidfd with no timeout says so at once.
bool exited_unseen(const pp_helper_slot& s) noexcept {
  if (s.st == pp_helper_slot::state::dead || s.proc.pidfd() < 0) return false;
  pollfd p{s.proc.pidfd(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace

process_pool_stats process_pool_core::stats() const noexcept {
  process_pool_stats st;
  std::uint64_t unseen = 0;
  for (const auto& s : slots_) {
    if (exited_unseen(*s)) {
      ++unseen;
      continue;
    }
    if (s->st == pp_helper_slot::state::ready) ++st.helpers_ready;
    if (s->st == pp_helper_slot::state::starting) ++st.helpers_starting;
    for (const pp_flight& f : s->flights)
      if (f.call) ++st.in_flight;
  }
  st.helpers_started = started_;
  st.helpers_died = died_ + unseen;
  st.queued = queue_.size();
  st.queue_wait = waits_;
  st.run_time = runs_;
  return st;
}

std::vector<pid_t> process_pool_core::pids() const {
  std::vector<pid_t> v;
  for (const auto& s : slots_)
    if (s->st != pp_helper_slot::state::dead && !exited_unseen(*s)) v.push_back(s->proc.pid());
  return v;
}

// ---- the functions process_pool.hpp declares ------------------------------------

task<std::vector<char>> pool_exchange(std::shared_ptr<process_pool_core> core,
                                      const remote_entry* entry, std::vector<char> args) {
  pp_pending_call c;
  c.core = core.get();
  c.entry = entry;
  proto::append_call(c.frame, 0, entry->name, entry->signature_hash, args);
  args = {};
  co_await c;
  switch (c.out) {
    case pp_outcome::result:
      co_return std::move(c.body);
    case pp_outcome::raised:
      throw_remote_reply(remote_reply::raised, entry->name, c.body);
    case pp_outcome::rejected:
      throw_remote_reply(remote_reply::rejected, entry->name, c.body);
    case pp_outcome::crashed:
      throw worker_crashed(c.message);
    case pp_outcome::cancelled:
      throw cancelled_error{};
    case pp_outcome::pending:
      break;
  }
  throw std::logic_error("eddy: process_pool: call resumed while pending");
}

std::shared_ptr<process_pool_core> make_process_pool_core(loop& l, const process_pool_options& o) {
  auto core = std::make_shared<process_pool_core>(l, o);
  unsigned n = o.helpers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  try {
    for (unsigned i = 0; i < n; ++i) core->start_helper();
  } catch (...) {
    core->close();
    throw;
  }
  return core;
}

void close_process_pool_core(process_pool_core& core) noexcept {
  core.close();
}

namespace {
// Waits until the pool's reader and writer tasks are gone (every helper reaped).
struct idle_awaiter {
  process_pool_core* core;
  bool cancelled = false;
  task_core* me = nullptr;
  std::coroutine_handle<> h{};
  cancel_hook hook{&on_cancel};

  bool await_ready() noexcept {
    cancelled = consume_pending_cancel();
    return cancelled || core->tasks() == 0;
  }
  void await_suspend(std::coroutine_handle<> hh) {
    h = hh;
    me = current_core();
    core->idle_waiters().push_back({hh, me});
    if (me != nullptr) me->hook_ = &hook;
  }
  void await_resume() {
    if (me != nullptr && me->hook_ == &hook) me->hook_ = nullptr;
    if (cancelled) throw cancelled_error{};
  }
  static bool on_cancel(cancel_hook* hk) noexcept {
    idle_awaiter* a = outer_of(hk, &idle_awaiter::hook);
    auto& ws = a->core->idle_waiters();
    auto it = std::find_if(ws.begin(), ws.end(), [a](const auto& w) { return w.h == a->h; });
    if (it == ws.end()) return false;  // already woken
    ws.erase(it);
    a->cancelled = true;
    detail::loop_schedule(a->core->event_loop(), a->me, a->h);
    return true;
  }
};
}  // namespace

task<void> shutdown_process_pool_core(std::shared_ptr<process_pool_core> core) {
  core->close();
  co_await idle_awaiter{core.get()};
}
process_pool_stats process_pool_core_stats(const process_pool_core& core) noexcept {
  return core.stats();
}
std::vector<pid_t> process_pool_core_pids(const process_pool_core& core) {
  return core.pids();
}
std::uint64_t process_pool_core_max_message(const process_pool_core& core) noexcept {
  return core.max_message();
}

void throw_oversized(std::string_view name, std::size_t size, std::uint64_t max) {
  throw remote_call_error("arguments of '" + std::string(name) + "' take " + std::to_string(size) +
                          " bytes, more than max_message_size (" + std::to_string(max) + ")");
}

}  // namespace eddy::detail

namespace eddy {

namespace {

void validate(const process_pool_options& o) {
  auto bad = [](const char* field, const std::string& why) {
    throw std::invalid_argument(std::string("eddy: process_pool_options.") + field + ": " + why);
  };
  if (o.helpers > 256) bad("helpers", "at most 256");
  if (o.max_in_flight < 1 || o.max_in_flight > 64) bad("max_in_flight", "must be 1..64");
  if (o.max_message_size < 1024 || o.max_message_size > (std::uint64_t{1} << 32))
    bad("max_message_size", "must be 1 KiB..4 GiB");
  if (o.memory_limit != 0 && o.memory_limit < (std::uint64_t{16} << 20))
    bad("memory_limit", "0 (none) or at least 16 MiB");
  if (o.max_start_failures < 1 || o.max_start_failures > 1000)
    bad("max_start_failures", "must be 1..1000");
  if (o.start_timeout < std::chrono::milliseconds(1) || o.start_timeout > std::chrono::hours(1))
    bad("start_timeout", "must be 1 ms..1 h");
  if (o.helper_spin < std::chrono::microseconds(0) || o.helper_spin > std::chrono::milliseconds(10))
    bad("helper_spin", "must be 0..10 ms");
}

}  // namespace

process_pool::process_pool(process_pool_options options) : process_pool(loop::current(), options) {}

process_pool::process_pool(loop& l, process_pool_options options) {
  validate(options);
  if (std::getenv(detail::helper_protocol::helper_env) != nullptr)
    throw std::logic_error(
        "eddy: this process is a process_pool helper, but main() did not route helper mode: "
        "call eddy::process_pool::helper_main_if_requested(argc, argv) first thing in main()");
  detail::registry_check();
  core_ = detail::make_process_pool_core(l, options);
}

process_pool::~process_pool() {
  if (core_) detail::close_process_pool_core(*core_);
}

}  // namespace eddy
