// Task dumps (loop::tasks, loop::dump_tasks). Everything here reads the loop's
// own state on the loop's own thread: a dump of another loop is posted to that
// loop and taken there (loop_group::dump_tasks), never read across threads, so a
// dump is safe while tasks run on other loops (the crash tokio-console users met
// was a dump walking another worker's tasks).
//
// What a task awaits is asked of the awaitable itself, through the optional
// `describe` of the cancel_hook the task registered when it suspended: nothing is
// recorded per await, so the dump costs nothing until it is asked for.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "runtime/loop_metrics.hpp"

namespace eddy {

namespace {

std::string ms_text(std::int64_t ns) {
  char b[48];
  if (ns < 0) ns = 0;
  if (ns < 10'000'000) std::snprintf(b, sizeof b, "%.2f ms", static_cast<double>(ns) / 1e6);
  else if (ns < 10'000'000'000) std::snprintf(b, sizeof b, "%.0f ms", static_cast<double>(ns) / 1e6);
  else std::snprintf(b, sizeof b, "%.1f s", static_cast<double>(ns) / 1e9);
  return b;
}

// "eddy::task<int> {anonymous}::serve(options)" -> "{anonymous}::serve": GCC names a
// coroutine's body after its frame type, too long for a line per task.
std::string short_function(const char* f) {
  if (f == nullptr || *f == '\0') return "?";
  std::string s(f);
  // The name ends at the '(' of the parameter list: the first '(' outside <...>.
  int depth = 0;
  std::size_t end = s.size();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    else if (s[i] == '>') --depth;
    else if (s[i] == '(' && depth == 0 && s.compare(i, 3, "()(") != 0) {  // not operator()'s own
      end = i;
      break;
    }
  }
  s.resize(end);
  depth = 0;
  for (std::size_t i = s.size(); i-- > 0;) {  // the return type ends at the last space outside <...>
    if (s[i] == '>') ++depth;
    else if (s[i] == '<') --depth;
    else if (s[i] == ' ' && depth == 0) return s.substr(i + 1);
  }
  return s;
}

}  // namespace

std::vector<task_info> loop::tasks() const {
  const std::int64_t now = clock_ns();
  const detail::task_core* running = detail::tls_current_core;
  std::vector<task_info> out;
  out.reserve(live_count_);
  for (const detail::task_core* c = live_head_; c != nullptr; c = c->live_next_) {
    task_info t;
    t.id = c;
    t.spawned_at = c->site_;
    t.age = std::chrono::nanoseconds(now - c->spawned_ns_);
    t.since = std::chrono::nanoseconds(now - c->last_run_ns_);
    t.polls = c->polls_;
    t.poll_ns = c->poll_ns_;
    t.cancel_requested = c->cancel_undelivered();
    if (c == running) {
      t.state = "running";
      t.since = {};
    } else if (c->scheduled_) {
      t.state = "scheduled";
    } else if (c->hook_ != nullptr && c->hook_->describe != nullptr) {
      detail::wait_description d;
      c->hook_->describe(c->hook_, d);
      t.state = "waiting";
      t.fd = d.fd;
      t.awaiting = d.kind != nullptr ? d.kind : "?";
      if (d.fd >= 0) t.awaiting += " on fd " + std::to_string(d.fd);
      if (d.deadline_ns >= 0) {
        t.awaiting += d.deadline_ns >= now ? ", due in " + ms_text(d.deadline_ns - now)
                                           : ", due " + ms_text(now - d.deadline_ns) + " ago";
      }
    } else {
      t.state = "suspended";
      t.awaiting = c->hook_ != nullptr ? "an awaitable that does not describe itself" : "an uncancellable awaitable";
    }
    out.push_back(std::move(t));
  }
  std::reverse(out.begin(), out.end());  // the live list is newest first
  return out;
}

std::string loop::dump_tasks() const {
  const std::vector<task_info> ts = tasks();
  char head[160];
  std::snprintf(head, sizeof head, "eddy: loop %u (%.*s): %zu live task(s); ", id_,
                static_cast<int>(backend_name().size()), backend_name().data(), ts.size());
  std::string s = head;
  s += metrics().summary();
  s += '\n';
  for (const task_info& t : ts) {
    const char* file = t.spawned_at.file_name();
    const char* slash = file != nullptr ? std::strrchr(file, '/') : nullptr;
    char line[160];
    std::snprintf(line, sizeof line, "  task %p spawned at %s:%u (%s), age %s, %s", t.id,
                  slash != nullptr ? slash + 1 : (file != nullptr && *file ? file : "?"),
                  static_cast<unsigned>(t.spawned_at.line()), short_function(t.spawned_at.function_name()).c_str(),
                  ms_text(t.age.count()).c_str(), t.state);
    s += line;
    if (!t.awaiting.empty()) s += ": " + t.awaiting;
    if (t.state[0] != 'r') s += ", for " + ms_text(t.since.count());
    s += ", polled " + std::to_string(t.polls) + "x";
    if (t.poll_ns != 0) s += " (" + ms_text(static_cast<std::int64_t>(t.poll_ns)) + ")";
    if (t.cancel_requested) s += ", cancel requested";
    s += '\n';
  }
  return s;
}

}  // namespace eddy
