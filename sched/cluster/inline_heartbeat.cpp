// See inline_heartbeat.hpp for why this thread exists.
#include "inline_heartbeat.hpp"

#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/run.hpp>
#include <eddy/runtime/time.hpp>
#include <mutex>

#include "redis_connection.hpp"

namespace eddy::detail {

struct inline_heartbeat::state {
  redis_endpoint ep;
  std::string jobs, group, consumer;
  std::chrono::milliseconds every;

  std::mutex m;
  std::string job;  // the running job's id, "" between jobs
  bool stop = false;
  loop_handle loop;       // the thread's loop, once it runs
  event* wake = nullptr;  // read and written on the thread's loop only
};

namespace {

// Takes the event by pointer: it lives in beat()'s frame, longer than this task.
task<void> wait_event(event* e) {
  co_await e->wait();
}

task<void> beat(std::shared_ptr<inline_heartbeat::state> st) {
  event wake;
  {
    std::lock_guard g(st->m);
    if (st->stop) co_return;
    st->loop = loop::current().handle();
    st->wake = &wake;
  }
  std::shared_ptr<redis_connection> c;
  for (;;) {
    try {
      co_await with_timeout(st->every, wait_event(&wake));
    } catch (const timeout_error&) {
    }
    std::string id;
    {
      std::lock_guard g(st->m);
      if (st->stop) break;
      id = st->job;
    }
    if (id.empty()) continue;
    try {
      // Opened on the first long job only; a failed one is opened again next tick.
      if (!c || !c->alive()) c = co_await redis_connection::open(st->ep, st->every);
      c->send({"XCLAIM", st->jobs, st->group, st->consumer, "0", id, "JUSTID"},
              [](redis_reply, const std::string&) {});
    } catch (const std::exception&) {
      if (c) c->close("heartbeat failed");
      c.reset();
    }
  }
  st->wake = nullptr;
  if (c) c->close("stopping");
}

}  // namespace

inline_heartbeat::inline_heartbeat(redis_endpoint ep, std::string jobs, std::string group,
                                   std::string consumer, std::chrono::milliseconds every)
    : st_(std::make_shared<state>()) {
  st_->ep = std::move(ep);
  st_->jobs = std::move(jobs);
  st_->group = std::move(group);
  st_->consumer = std::move(consumer);
  st_->every = every;
  thread_ = std::thread([st = st_] {
    try {
      eddy::run(beat(st));
    } catch (...) {
      // No loop on this thread (out of memory, no backend): the ticker's heartbeats
      // still cover jobs between loop iterations; long jobs may be claimed twice.
    }
  });
}

inline_heartbeat::~inline_heartbeat() {
  loop_handle h;
  {
    std::lock_guard g(st_->m);
    st_->stop = true;
    h = st_->loop;
  }
  if (h.valid())
    (void)h.call_soon_threadsafe([st = st_] {
      if (st->wake != nullptr) st->wake->set();
    });
  thread_.join();
}

void inline_heartbeat::begin(const std::string& id) {
  std::lock_guard g(st_->m);
  st_->job = id;
}

void inline_heartbeat::end() {
  std::lock_guard g(st_->m);
  st_->job.clear();
}

}  // namespace eddy::detail
