// The worker's side of cluster_pool: eddy::cluster_worker_main.
//
// One loop on the calling thread and two connections: `rd` for the blocking
// XREADGROUP, `cmd` for everything else. The functions run on a thread_pool of
// `concurrency` threads (so a long job never stops the loop's heartbeats), except
// with concurrency 1: then on the loop thread itself, which has nothing else to do
// while its one slot is taken, and a sleeping inline_heartbeat thread heartbeats the
// job meanwhile. That saves each call two thread wake-ups (loop -> pool thread ->
// loop); docs/cluster_pool.md counts the round trip's hops.
//
// Tasks:
// - session (main): connect, create the group, send answers left over from the last
//   session, then XREADGROUP COUNT <free slots> BLOCK in a loop; each entry starts a
//   job task. On a broker failure it reconnects with backoff.
// - ticker: every heartbeat interval, XCLAIM JUSTID the jobs this worker runs
//   (resets their idle time without counting a delivery), then XAUTOCLAIM jobs idle
//   past claim_after into free slots; a claimed job whose delivery count passed
//   max_deliveries is dead-lettered instead of run.
// - job: run the function on the pool, then (answer first) XADD the answer to the
//   caller's stream, PEXPIRE it, XACK and XDEL the job, in one pipelined write. If
//   the connection fails, the job retries after the next connect; meanwhile another
//   worker may claim it (at least once).
// - signals: SIGTERM or SIGINT stops reading and claiming (checked before every
//   XREADGROUP too, so a concurrency-1 worker, busy on its loop thread, takes no new
//   job after one came; a job the XREADGROUP blocked at that moment still delivers
//   is handed back to the group, see hand_back); running jobs finish and are
//   answered; the worker leaves the group (XGROUP DELCONSUMER, which would drop its
//   pending entries: there are none left by then) and returns 0.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/run.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/cluster_pool.hpp>
#include <eddy/sched/offload.hpp>
#include <eddy/sched/signal_set.hpp>
#include <eddy/sched/thread_pool.hpp>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "../remote_invoke.hpp"
#include "cluster_protocol.hpp"
#include "inline_heartbeat.hpp"
#include "redis_connection.hpp"

namespace eddy {
namespace {

using namespace detail;
namespace proto = cluster_protocol;
using std::chrono::milliseconds;

struct job_fields {
  std::string id;  // in the jobs stream
  std::string caller, job, fn, args;
  std::uint64_t sig = 0;
  bool complete = false;
};

job_fields parse_entry(const redisReply* e) {
  job_fields j;
  if (e == nullptr || e->type != REDIS_REPLY_ARRAY || e->elements < 2) return j;
  j.id = std::string(reply_string(e->element[0]));
  const redisReply* f = e->element[1];
  if (f == nullptr || f->type != REDIS_REPLY_ARRAY) return j;  // deleted meanwhile
  int seen = 0;
  for (std::size_t k = 0; k + 1 < f->elements; k += 2) {
    std::string_view name = reply_string(f->element[k]);
    std::string_view v = reply_string(f->element[k + 1]);
    if (name == "c") j.caller = v, ++seen;
    else if (name == "j") j.job = v, ++seen;
    else if (name == "f") j.fn = v, ++seen;
    else if (name == "s") j.sig = std::strtoull(std::string(v).c_str(), nullptr, 10), ++seen;
    else if (name == "a") j.args = v, ++seen;
  }
  j.complete = seen == 5;
  return j;
}

struct job_outcome {
  remote_reply kind;
  std::vector<char> body;
};

job_outcome run_registered(const std::string& fn, std::uint64_t sig, const std::string& args,
                           std::uint64_t max) {
  job_outcome o;
  o.kind = invoke_registered(fn, sig, std::span<const char>(args.data(), args.size()), o.body, max);
  return o;
}

// The jobs' threads. They park at once when idle instead of spinning 50 µs (the
// pool's default): a worker's jobs come in batches from its own loop, and spinning
// threads take the CPU the loop and Redis need (perf: 12% of a worker's cycles in
// the pool's search loop at 5,000 jobs/s of 1 KiB echoes, 4 threads on 2 cores).
pool_options pool_for(unsigned concurrency) {
  pool_options o = pool_options::fixed(concurrency, "eddy-cluster");
  o.spin_before_park = std::chrono::microseconds(0);
  return o;
}

class worker {
 public:
  worker(redis_endpoint ep, cluster_worker_options o) : ep_(std::move(ep)), opts_(std::move(o)) {
    jobs_ = proto::jobs_key(opts_.ns);
    group_ = proto::group_name(opts_.ns);
    dead_ = proto::dead_key(opts_.ns);
    heartbeat_ = opts_.heartbeat.count() > 0 ? opts_.heartbeat : opts_.claim_after / 3;
    if (heartbeat_ < milliseconds(1)) heartbeat_ = milliseconds(1);
    if (opts_.concurrency > 1)
      pool_.emplace(pool_for(opts_.concurrency));
    else
      inline_beat_ =
          std::make_unique<inline_heartbeat>(ep_, jobs_, group_, opts_.consumer, heartbeat_);
  }

  task<int> run();

 private:
  void notify() {
    changed_.set();
    changed_.clear();
  }
  void log(const std::string& s) {
    if (opts_.verbose) std::cerr << "eddy cluster worker " << opts_.consumer << ": " << s << "\n";
  }
  unsigned free_slots() const {
    return busy_ >= opts_.concurrency ? 0u : opts_.concurrency - busy_;
  }
  void start_job(job_fields j);
  static task<void> job(worker* w, job_fields j);
  task<void> answer(std::vector<std::vector<std::string>> cmds,
                    std::shared_ptr<redis_connection> first = nullptr);
  task<void> session();
  static task<void> ticker(worker* w);
  task<void> claim();
  task<bool> hand_back(std::shared_ptr<redis_connection> cmd, const std::string& id);
  static task<void> watch_signals(worker* w);
  // True once stopping, and true at once if SIGTERM or SIGINT is waiting: they are
  // blocked and read through a signalfd (run_worker), so watch_signals sees one
  // only when the loop next polls, which a concurrency-1 worker does not do while
  // its job runs on the loop thread. Asked before a finished job's answer goes out
  // with the next XREADGROUP and before each XREADGROUP, so a worker told to stop
  // during a job takes no new one. One sigpending(2) per call.
  bool stop_requested() {
    if (!stopping_) {
      sigset_t pending;
      if (::sigpending(&pending) == 0 &&
          (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1))
        begin_stopping();
    }
    return stopping_;
  }
  void begin_stopping() {
    if (stopping_) return;
    log("stopping: finishing " + std::to_string(running_.size()) + " job(s)");
    stopping_ = true;
    // The blocking XREADGROUP ends within its 1 s BLOCK; closing its connection
    // instead would also cut the answers of the jobs still running.
    notify();
  }
  void drop_connections(const std::string& why) {
    connected_ = false;
    auto cmd = std::move(cmd_);
    auto rd = std::move(rd_);
    if (cmd) cmd->close(why);
    if (rd) rd->close(why);
    notify();
  }

  redis_endpoint ep_;
  cluster_worker_options opts_;
  std::string jobs_, group_, dead_;
  milliseconds heartbeat_;
  std::optional<thread_pool> pool_;                // concurrency > 1
  std::unique_ptr<inline_heartbeat> inline_beat_;  // concurrency 1
  std::shared_ptr<redis_connection> cmd_, rd_;
  bool connected_ = false;
  bool stopping_ = false;
  bool login_refused_ = false;
  std::set<std::string> running_;  // stream ids of jobs taken and not yet acknowledged
  unsigned busy_ = 0;              // jobs whose function has not returned (slots in use)
  // When each caller's result stream last had its expiry pushed back: once a second
  // is enough, and saves a command per answer.
  std::map<std::string, std::chrono::steady_clock::time_point> expiry_set_;
  event changed_;
  std::size_t tasks_ = 0;  // job, ticker and signal tasks alive
};

void worker::start_job(job_fields j) {
  running_.insert(j.id);
  ++busy_;
  ++tasks_;
  loop::current().spawn(job(this, std::move(j))).detach();
}

// Sends `cmds` (an answer and its acknowledgement) once a connection takes them:
// on `first` if given, otherwise (and after any failure) on cmd_.
task<void> worker::answer(std::vector<std::vector<std::string>> cmds,
                          std::shared_ptr<redis_connection> first) {
  for (;;) {
    while (!connected_) co_await changed_.wait();
    auto cmd = first ? std::move(first) : cmd_;
    try {
      std::vector<redis_reply> rs = co_await cmd->pipeline(cmds);
      for (auto& r : rs)
        if (std::string_view err = reply_error(r.get()); !err.empty())
          log("Redis refused an answer: " + std::string(err));
      co_return;
    } catch (const broker_error&) {
      // The session notices the failure and reconnects; try again then.
    }
    while (connected_ && cmd_ == cmd) co_await changed_.wait();
  }
}

task<void> worker::job(worker* w, job_fields j) {
  std::string kind(1, proto::kind_rejected);
  std::vector<char> body;
  if (!j.complete) {
    body = encode_strings("malformed job entry " + j.id, nullptr);
  } else {
    try {
      job_outcome o;
      if (w->inline_beat_) {
        w->inline_beat_->begin(j.id);
        try {
          o = run_registered(j.fn, j.sig, j.args, w->opts_.max_message_size);
        } catch (...) {
          w->inline_beat_->end();
          throw;
        }
        w->inline_beat_->end();
      } else {
        o = co_await run_in(*w->pool_, &run_registered, j.fn, j.sig, j.args,
                            w->opts_.max_message_size);
      }
      kind[0] = o.kind == remote_reply::result   ? proto::kind_result
                : o.kind == remote_reply::raised ? proto::kind_raised
                                                 : proto::kind_rejected;
      body = std::move(o.body);
    } catch (const cancelled_error&) {
      w->running_.erase(j.id);
      --w->busy_;
      --w->tasks_;
      w->notify();
      co_return;  // the loop is closing: the job stays pending and is claimed elsewhere
    } catch (const std::exception& e) {
      body = encode_strings(std::string("the worker could not run the job: ") + e.what(), nullptr);
    }
  }
  // The slot is free once the function returned; the id stays in running_ (and is
  // heartbeated) until its acknowledgement is written.
  --w->busy_;
  w->notify();
  std::vector<std::vector<std::string>> cmds;
  if (!j.caller.empty()) {
    cmds.push_back({"XADD", j.caller, "MAXLEN", "~", "1000000", "*", "j", j.job, "k", kind, "b",
                    std::string(body.begin(), body.end())});
    const auto now = std::chrono::steady_clock::now();
    auto [it, fresh] = w->expiry_set_.try_emplace(j.caller, now);
    if (fresh || now - it->second > std::chrono::seconds(1)) {
      it->second = now;
      cmds.push_back({"PEXPIRE", j.caller, std::to_string(w->opts_.result_ttl.count())});
    }
    if (w->expiry_set_.size() > 100000) w->expiry_set_.clear();
  }
  cmds.push_back({"XACK", w->jobs_, w->group_, j.id});
  cmds.push_back({"XDEL", w->jobs_, j.id});
  // With one slot nothing is parked on rd_ now (no free slot, no XREADGROUP), so the
  // answer goes there and the session's next XREADGROUP, notified above, joins it in
  // the same write: Redis reads one socket for both instead of two.
  std::shared_ptr<redis_connection> via;
  if (w->inline_beat_ && !w->stop_requested() && w->rd_ && w->rd_->alive() && w->rd_->pending() == 0)
    via = w->rd_;
  try {
    co_await w->answer(std::move(cmds), std::move(via));
  } catch (...) {
  }
  w->running_.erase(j.id);
  --w->tasks_;
  w->notify();
}

task<void> worker::claim() {
  const unsigned free = free_slots();
  if (free == 0 || stop_requested() || !connected_) co_return;
  auto cmd = cmd_;
  std::vector<std::string> cmd_args1{"XAUTOCLAIM", jobs_, group_, opts_.consumer,
                                         std::to_string(opts_.claim_after.count()), "0-0", "COUNT",
                                         std::to_string(free)};
  redis_reply r = co_await cmd->command(std::move(cmd_args1));
  if (!reply_error(r.get()).empty() || r->type != REDIS_REPLY_ARRAY || r->elements < 2) co_return;
  std::vector<job_fields> claimed;
  const redisReply* entries = r->element[1];
  for (std::size_t i = 0; i < entries->elements; ++i) {
    job_fields j = parse_entry(entries->element[i]);
    if (!j.id.empty()) claimed.push_back(std::move(j));
  }
  if (claimed.empty()) co_return;
  // XAUTOCLAIM does not say how often an entry was delivered; XPENDING does.
  std::vector<std::vector<std::string>> q;
  for (const auto& j : claimed) q.push_back({"XPENDING", jobs_, group_, j.id, j.id, "1"});
  std::vector<redis_reply> counts = co_await cmd->pipeline(std::move(q));
  for (std::size_t i = 0; i < claimed.size(); ++i) {
    job_fields& j = claimed[i];
    long long deliveries = 0;
    const redisReply* p = counts[i].get();
    if (p->type == REDIS_REPLY_ARRAY && p->elements == 1 && p->element[0]->elements == 4)
      deliveries = p->element[0]->element[3]->integer;
    if (!j.complete) {
      // Its fields are gone (a cancelled call's XDEL raced the claim): just forget it.
      cmd->send({"XACK", jobs_, group_, j.id}, [](redis_reply, const std::string&) {});
      continue;
    }
    if (deliveries > static_cast<long long>(opts_.max_deliveries)) {
      const std::string msg = "job " + j.id + " of '" + j.fn + "' was delivered " +
                              std::to_string(deliveries - 1) +
                              " times and never finished (max_deliveries " +
                              std::to_string(opts_.max_deliveries) + "); moved to the dead-letter stream " +
                              dead_;
      log(msg);
      running_.insert(j.id);
      ++tasks_;
      std::vector<std::vector<std::string>> cmds{
          {"XADD", dead_, "*", "c", j.caller, "j", j.job, "f", j.fn, "s", std::to_string(j.sig),
           "a", j.args, "id", j.id, "deliveries", std::to_string(deliveries - 1)},
          {"XADD", j.caller, "MAXLEN", "~", "1000000", "*", "j", j.job, "k",
           std::string(1, proto::kind_dead), "b", msg},
          {"PEXPIRE", j.caller, std::to_string(opts_.result_ttl.count())},
          {"XACK", jobs_, group_, j.id},
          {"XDEL", jobs_, j.id}};
      try {
        co_await answer(std::move(cmds));
      } catch (...) {
      }
      running_.erase(j.id);
      --tasks_;
      notify();
      continue;
    }
    log("claimed job " + j.id + " (delivery " + std::to_string(deliveries) + ")");
    start_job(std::move(j));
  }
}

task<void> worker::ticker(worker* w) {
  while (!w->stopping_ || !w->running_.empty()) {
    try {
      co_await sleep_for(w->heartbeat_);
    } catch (...) {
      break;
    }
    if (!w->connected_) continue;
    try {
      if (!w->running_.empty()) {
        std::vector<std::string> hb{"XCLAIM", w->jobs_, w->group_, w->opts_.consumer, "0"};
        hb.insert(hb.end(), w->running_.begin(), w->running_.end());
        hb.push_back("JUSTID");
        std::vector<std::string_view> v(hb.begin(), hb.end());
        w->cmd_->send(v, [](redis_reply, const std::string&) {});
      }
      if (!w->stopping_) co_await w->claim();
    } catch (const cancelled_error&) {
      break;
    } catch (const std::exception&) {
      // A failed connection: the session reconnects.
    }
  }
  --w->tasks_;
  w->notify();
}

task<void> worker::watch_signals(worker* w) {
  try {
    signal_set sigs{SIGTERM, SIGINT};
    co_await sigs.wait();
    w->begin_stopping();
  } catch (...) {
  }
  --w->tasks_;
  w->notify();
}

task<void> worker::session() {
  auto cmd = co_await redis_connection::open(ep_, std::chrono::milliseconds(5000));
  std::shared_ptr<redis_connection> rd;
  try {
    rd = co_await redis_connection::open(ep_, std::chrono::milliseconds(5000));
  } catch (...) {
    cmd->close("connect failed");
    throw;
  }
  std::vector<std::string> cmd_args2{"XGROUP", "CREATE", jobs_, group_, "0", "MKSTREAM"};
  redis_reply g = co_await cmd->command(std::move(cmd_args2));
  if (std::string_view err = reply_error(g.get()); !err.empty() && !err.starts_with("BUSYGROUP"))
    throw broker_error("Redis at " + ep_.name() + " refused XGROUP CREATE: " + std::string(err));
  cmd_ = cmd;
  rd_ = rd;
  // Either connection failing ends the session: the blocked reader, the jobs
  // waiting to answer and the ticker all learn it through changed_.
  cmd->on_fail = [this](const std::string& why) { drop_connections(why); };
  rd->on_fail = [this](const std::string& why) { drop_connections(why); };
  connected_ = true;
  notify();
  log("connected to " + ep_.name());
  // Jobs this consumer owns that it is not running: delivered by an XREADGROUP
  // whose reply the broker failure swallowed. Reading the group's history (id 0)
  // takes them back now rather than after claim_after.
  for (std::string cursor = "0"; !stopping_;) {
    std::vector<std::string> history{"XREADGROUP", "GROUP", group_, opts_.consumer, "COUNT",
                                     "256", "STREAMS", jobs_, cursor};
    redis_reply r = co_await rd->command(std::move(history));
    if (!reply_error(r.get()).empty() || r->type != REDIS_REPLY_ARRAY || r->elements == 0) break;
    const redisReply* entries = r->element[0]->element[1];
    if (entries->elements == 0) break;
    for (std::size_t i = 0; i < entries->elements; ++i) {
      job_fields j = parse_entry(entries->element[i]);
      cursor = j.id;
      if (j.id.empty() || running_.count(j.id)) continue;
      if (!j.complete) {
        cmd->send({"XACK", jobs_, group_, j.id}, [](redis_reply, const std::string&) {});
        continue;
      }
      log("took back job " + j.id + " after a reconnect");
      start_job(std::move(j));
    }
  }
  while (!stopping_) {
    while (free_slots() == 0 && !stopping_ && rd->alive()) co_await changed_.wait();
    if (stop_requested()) break;
    if (!rd->alive()) throw broker_error("Redis at " + ep_.name() + ": connection lost");
    std::vector<std::string> cmd_args3{"XREADGROUP", "GROUP", group_, opts_.consumer, "COUNT",
                                          std::to_string(free_slots()), "BLOCK", "1000",
                                          "STREAMS", jobs_, ">"};
    redis_reply r = co_await rd->command(std::move(cmd_args3));
    if (std::string_view err = reply_error(r.get()); !err.empty()) {
      // NOGROUP after a restart without persistence: create it again next session.
      throw broker_error("Redis at " + ep_.name() + " refused XREADGROUP: " + std::string(err));
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) continue;
    const redisReply* entries = r->element[0]->element[1];
    for (std::size_t i = 0; i < entries->elements; ++i) {
      job_fields j = parse_entry(entries->element[i]);
      if (j.id.empty()) continue;
      if (stop_requested()) {
        // Delivered by the XREADGROUP that was blocked when the signal came.
        const bool back = co_await hand_back(cmd, j.id);
        if (back) continue;
      }
      start_job(std::move(j));
    }
  }
}

// A job delivered after the worker began stopping goes back to the group instead of
// delaying the stop by its run: XCLAIM moves it to a consumer no worker runs as,
// idle for claim_after, so the next XAUTOCLAIM of any worker takes it at once, with
// its delivery count back to 0 (this delivery never ran it). False if the broker
// did not confirm: then this worker runs it, as it would have before.
task<bool> worker::hand_back(std::shared_ptr<redis_connection> cmd, const std::string& id) {
  try {
    std::vector<std::string> args{"XCLAIM", jobs_, group_, proto::handed_back_consumer, "0", id, "IDLE",
                                  std::to_string(opts_.claim_after.count()), "RETRYCOUNT", "0", "JUSTID"};
    redis_reply r = co_await cmd->command(std::move(args));
    const bool ok = reply_error(r.get()).empty() && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
    if (ok) log("handed job " + id + " back: stopping");
    co_return ok;
  } catch (...) {
    co_return false;
  }
}

task<int> worker::run() {
  ++tasks_;
  loop::current().spawn(watch_signals(this)).detach();
  ++tasks_;
  loop::current().spawn(ticker(this)).detach();
  auto backoff = milliseconds(10);
  bool ever = false;
  while (!stopping_) {
    try {
      co_await session();
    } catch (const broker_error& e) {
      const std::string why = std::string(e.what());
      if (stopping_) break;
      if (!ever && why.find("refused the login") != std::string::npos) {
        std::cerr << why << "\n";
        login_refused_ = true;
        stopping_ = true;
        break;
      }
      log("disconnected: " + why + "; retrying in " + std::to_string(backoff.count()) + " ms");
    }
    ever = ever || connected_;
    if (stopping_) break;
    drop_connections("reconnecting");
    co_await sleep_for(backoff);
    backoff = std::min(backoff * 2, milliseconds(1000));
    if (connected_) backoff = milliseconds(10);
  }
  // An answer sent on rd_ (one slot: see job()) is not cut off by the close below.
  while (rd_ && rd_->alive() && rd_->pending() > 0) co_await changed_.wait();
  if (rd_) {
    // Only the reading side goes: answers and the group's goodbye still need cmd_.
    rd_->on_fail = nullptr;
    rd_->close("stopping");
  }
  // Finish and answer the running jobs; a broker that never comes back leaves them
  // pending, to be claimed by another worker.
  while (!running_.empty() && !login_refused_) {
    if (!connected_) {
      bool failed = false;
      try {
        co_await session();
      } catch (...) {
        failed = true;
      }
      if (failed) {
        drop_connections("reconnecting");
        co_await sleep_for(milliseconds(100));
        continue;
      }
    }
    co_await changed_.wait();
  }
  if (connected_ && cmd_ && cmd_->alive() && !login_refused_) {
    try {
      std::vector<std::string> cmd_args4{"XGROUP", "DELCONSUMER", jobs_, group_, opts_.consumer};
      co_await cmd_->command(std::move(cmd_args4));
    } catch (...) {
    }
  }
  drop_connections("stopped");
  log("stopped");
  co_return login_refused_ ? 1 : 0;
}

}  // namespace

int cluster_worker_main(std::string_view url, cluster_worker_options o) {
  detail::redis_endpoint ep;
  try {
    ep = detail::parse_redis_url(url);
    proto::check_namespace(o.ns);
    if (o.concurrency < 1 || o.concurrency > 1024)
      throw std::invalid_argument("eddy: cluster_worker_options.concurrency must be 1..1024");
    if (o.claim_after < milliseconds(10) || o.claim_after > std::chrono::hours(24))
      throw std::invalid_argument("eddy: cluster_worker_options.claim_after must be 10 ms..1 day");
    if (o.heartbeat.count() < 0 || (o.heartbeat.count() > 0 && o.heartbeat >= o.claim_after))
      throw std::invalid_argument(
          "eddy: cluster_worker_options.heartbeat must be 0 or below claim_after");
    if (o.max_deliveries < 1 || o.max_deliveries > 1000)
      throw std::invalid_argument("eddy: cluster_worker_options.max_deliveries must be 1..1000");
    if (o.max_message_size < 1024 || o.max_message_size > (std::uint64_t{512} << 20))
      throw std::invalid_argument(
          "eddy: cluster_worker_options.max_message_size must be 1 KiB..512 MiB");
    if (o.result_ttl < std::chrono::seconds(1) || o.result_ttl > std::chrono::hours(24 * 30))
      throw std::invalid_argument("eddy: cluster_worker_options.result_ttl must be 1 s..30 days");
    if (o.consumer.size() > 256)
      throw std::invalid_argument("eddy: cluster_worker_options.consumer longer than 256 bytes");
    detail::registry_check();
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  if (o.consumer.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    o.consumer = std::string(host) + ":" + std::to_string(::getpid());
  }
  // Signals are taken through a signalfd: block them before any thread exists, so
  // the pool's threads inherit the mask and never take SIGTERM themselves.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  worker w(std::move(ep), std::move(o));
  return eddy::run(w.run());
}

}  // namespace eddy
