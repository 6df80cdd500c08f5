// The caller's side of cluster_pool: submission, results, reconnects, cancellation.
//
// Everything runs on the pool's loop thread; nothing is locked.
//
// Objects:
// - cluster_core: two connections to Redis (cmd: XADD, XDEL, recovery; res: the
//   blocking XREAD of this caller's result stream, so a blocked read never delays a
//   submission), the calls not yet in Redis (`waiting_`) and those that are
//   (`flight_`, by job number). Between an XREAD's reply and the next XREAD, res is
//   idle: the results' XDEL and the XADDs of the calls made meanwhile (the finished
//   callers run before the next XREAD is sent) go on res, in one write with that
//   XREAD, so one call at a time costs Redis one socket read per call, not two.
// - cl_call: one call, in the frame of the coroutine awaiting it; in waiting_, in
//   flight_, or finished.
//
// A call's life: submit -> waiting_ -> pump() gives it a job number and XADDs it
// (at most max_in_flight in flight_) -> the XADD's reply records the stream id
// ("acked") -> the supervisor's XREAD brings the answer -> finish. A result whose job
// number is not in flight_ is a duplicate (a second delivery's run, or a cancelled
// call's) and is dropped.
//
// The supervisor task owns the connections: connect both, create the group, recover,
// then XREAD BLOCK in a loop. When either connection fails, both are closed, calls
// stay where they are, and it reconnects with backoff. Recovery after a reconnect:
// (1) read every result that arrived meanwhile; (2) ask Redis (XRANGE) whether each
// acked job still exists: one that is neither answered nor present was lost (a
// restart without AOF) and is sent again, like every unacked one. A job finished in
// the window between (1) and (2) runs twice; its second answer is a duplicate.
// While the broker stays unreachable for broker_timeout every call fails with
// broker_error, and new calls fail at once until a connect succeeds.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <eddy/runtime/errors.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/time.hpp>
#include <eddy/sched/cluster_pool.hpp>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "../pending_call.hpp"
#include "../remote_invoke.hpp"
#include "cluster_protocol.hpp"
#include "redis_connection.hpp"

namespace eddy {
namespace detail {

namespace proto = cluster_protocol;
using clock = std::chrono::steady_clock;

void cluster_protocol::check_namespace(std::string_view ns) {
  if (ns.empty() || ns.size() > 64)
    throw std::invalid_argument("eddy: cluster ns must be 1..64 bytes");
  for (char c : ns)
    // Braces make a Redis Cluster hash tag: "{video}" keeps every key in one slot.
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
          c == ':' || c == '{' || c == '}'))
      throw std::invalid_argument("eddy: cluster ns '" + std::string(ns) +
                                  "' may hold only A-Z a-z 0-9 _ . - : { }");
}

enum class cl_outcome { pending, answered, dead, broker, cancelled };

struct cl_call : pending_call<cl_call, cl_outcome> {
  cluster_core* core = nullptr;
  const remote_entry* entry = nullptr;
  std::vector<char> args;
  std::uint64_t job = 0;
  std::string stream_id;  // set when the XADD was acknowledged
  bool in_waiting = false;
  bool in_flight = false;
  char kind = 0;
  std::vector<char> body;
  std::string message;

  cl_call() = default;
  ~cl_call();
};

class cluster_core : public std::enable_shared_from_this<cluster_core> {
 public:
  cluster_core(loop& l, std::string_view url, const cluster_pool_options& o);

  void start() { l_->spawn(supervise(shared_from_this())).detach(); }
  void submit(cl_call* c);
  void cancel(cl_call* c) noexcept;
  void close() noexcept;
  task<void> wait_connected();
  task<void> shutdown();
  cluster_pool_stats stats() const noexcept {
    cluster_pool_stats s = stats_;
    s.connected = connected_;
    s.waiting = waiting_.size();
    s.in_flight = flight_.size();
    return s;
  }
  const std::string& caller() const noexcept { return caller_; }
  std::uint64_t max_message() const noexcept { return opts_.max_message_size; }

 private:
  static task<void> supervise(std::shared_ptr<cluster_core> self);
  task<void> recover(bool reconnect);
  void on_results(const redisReply* r);
  void pump() noexcept;
  void send_job(cl_call* c);
  void finish(cl_call* c, cl_outcome o, std::string message = {}) noexcept;
  void fail_all(const std::string& why) noexcept;
  void disconnect(const std::string& why) noexcept;

  loop* l_;
  redis_endpoint ep_;
  cluster_pool_options opts_;
  std::string caller_, jobs_key_, group_, res_key_;
  std::shared_ptr<redis_connection> cmd_, res_;
  std::deque<cl_call*> waiting_;
  std::unordered_map<std::uint64_t, cl_call*> flight_;
  std::uint64_t next_job_ = 1;
  std::string last_id_ = "0-0";
  // res_ carries no parked XREAD: between an XREAD's reply and the next one.
  bool res_idle_ = false;
  bool connected_ = false;
  bool ever_connected_ = false;
  bool closed_ = false;
  bool circuit_open_ = false;  // down past broker_timeout: new calls fail at once
  std::string last_error_;
  clock::time_point down_since_{};
  event state_changed_;  // connected, circuit opened, or closed
  event supervisor_done_;
  bool supervising_ = false;
  cluster_pool_stats stats_;
};

// ---- construction and options ------------------------------------------------

cluster_core::cluster_core(loop& l, std::string_view url, const cluster_pool_options& o)
    : l_(&l), ep_(parse_redis_url(url)), opts_(o) {
  proto::check_namespace(o.ns);
  if (o.max_in_flight < 1 || o.max_in_flight > 1'000'000)
    throw std::invalid_argument("eddy: cluster_pool_options.max_in_flight must be 1..1000000");
  if (o.max_message_size < 1024 || o.max_message_size > (std::uint64_t{512} << 20))
    throw std::invalid_argument(
        "eddy: cluster_pool_options.max_message_size must be 1 KiB..512 MiB");
  if (o.broker_timeout < std::chrono::milliseconds(10) || o.broker_timeout > std::chrono::hours(1))
    throw std::invalid_argument("eddy: cluster_pool_options.broker_timeout must be 10 ms..1 h");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  char tail[32];
  std::snprintf(tail, sizeof tail, ":%d:%08x", static_cast<int>(::getpid()), rd());
  caller_ = std::string(host) + tail;
  for (char& ch : caller_)
    if (ch == ' ') ch = '_';
  jobs_key_ = proto::jobs_key(o.ns);
  group_ = proto::group_name(o.ns);
  res_key_ = proto::results_key(o.ns, caller_);
}

// ---- calls ------------------------------------------------------------------

cl_call::~cl_call() {
  if (out == cl_outcome::pending && core != nullptr && (in_waiting || in_flight)) {
    suspended = false;
    core->cancel(this);
  }
}

void cluster_core::finish(cl_call* c, cl_outcome o, std::string message) noexcept {
  c->message = std::move(message);
  c->in_waiting = false;
  c->in_flight = false;
  c->settle(*l_, o);
}

void cluster_core::submit(cl_call* c) {
  if (closed_) {
    finish(c, cl_outcome::broker, "the cluster_pool was shut down");
    return;
  }
  if (circuit_open_) {
    finish(c, cl_outcome::broker, last_error_);
    return;
  }
  c->in_waiting = true;
  waiting_.push_back(c);
  pump();
}

void cluster_core::cancel(cl_call* c) noexcept {
  if (c->in_waiting) {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), c));
  } else if (c->in_flight) {
    flight_.erase(c->job);
    // Deleted before a worker read it: never runs. Read already: runs, and its
    // answer is a duplicate. Not acked yet: the XADD's reply deletes it.
    if (!c->stream_id.empty() && cmd_ && cmd_->alive()) {
      try {
        cmd_->send({"XDEL", jobs_key_, c->stream_id}, [](redis_reply, const std::string&) {});
      } catch (...) {
      }
    }
  }
  finish(c, cl_outcome::cancelled);
  pump();
}

void cluster_core::pump() noexcept {
  while (connected_ && !waiting_.empty() && flight_.size() < opts_.max_in_flight) {
    cl_call* c = waiting_.front();
    waiting_.pop_front();
    c->in_waiting = false;
    c->in_flight = true;
    c->job = next_job_++;
    flight_.emplace(c->job, c);
    try {
      send_job(c);
    } catch (const std::exception& e) {
      flight_.erase(c->job);
      finish(c, cl_outcome::broker, std::string("cannot send the job: ") + e.what());
    }
  }
}

void cluster_core::send_job(cl_call* c) {
  const std::string job = std::to_string(c->job);
  const std::string sig = std::to_string(c->entry->signature_hash);
  std::string_view args(c->args.data(), c->args.size());
  ++stats_.submitted;
  std::weak_ptr<cluster_core> weak = weak_from_this();
  const std::uint64_t number = c->job;
  // Ahead of the next XREAD on res_ when it is idle (one write, one socket for
  // Redis to read); on cmd_ otherwise, so a parked XREAD never delays a job.
  redis_connection& conn = res_idle_ && res_ && res_->alive() ? *res_ : *cmd_;
  conn.send(
      {"XADD", jobs_key_, "*", "c", res_key_, "j", job, "f", c->entry->name, "s", sig, "a", args},
      [weak, number](redis_reply r, const std::string&) {
        auto self = weak.lock();
        if (!self || !r) return;  // connection failed: resent after the reconnect
        auto it = self->flight_.find(number);
        if (std::string_view err = reply_error(r.get()); !err.empty()) {
          if (it != self->flight_.end()) {
            cl_call* c = it->second;
            self->flight_.erase(it);
            self->finish(c, cl_outcome::broker,
                         "Redis at " + self->ep_.name() + " refused the job: " + std::string(err));
            self->pump();
          }
          return;
        }
        std::string id(reply_string(r.get()));
        if (it != self->flight_.end()) {
          it->second->stream_id = std::move(id);
        } else if (self->cmd_ && self->cmd_->alive()) {
          // Cancelled before Redis answered: take the job back.
          self->cmd_->send({"XDEL", self->jobs_key_, id}, [](redis_reply, const std::string&) {});
        }
      });
}

void cluster_core::fail_all(const std::string& why) noexcept {
  while (!waiting_.empty()) {
    cl_call* c = waiting_.front();
    waiting_.pop_front();
    finish(c, cl_outcome::broker, why);
  }
  auto f = std::move(flight_);
  flight_.clear();
  for (auto& [job, c] : f) finish(c, cl_outcome::broker, why);
}

// ---- results ----------------------------------------------------------------

// XREAD's reply: [[key, [[id, [field, value, ...]], ...]]], or nil on timeout.
void cluster_core::on_results(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return;
  const redisReply* stream = r->element[0];
  if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2) return;
  const redisReply* entries = stream->element[1];
  std::vector<std::string> del{"XDEL", res_key_};
  for (std::size_t i = 0; i < entries->elements; ++i) {
    const redisReply* e = entries->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) continue;
    std::string_view id = reply_string(e->element[0]);
    last_id_ = std::string(id);
    del.emplace_back(id);
    const redisReply* f = e->element[1];
    std::uint64_t job = 0;
    char kind = 0;
    std::string_view body;
    for (std::size_t k = 0; f->type == REDIS_REPLY_ARRAY && k + 1 < f->elements; k += 2) {
      std::string_view name = reply_string(f->element[k]);
      std::string_view value = reply_string(f->element[k + 1]);
      if (name == "j")
        job = std::strtoull(std::string(value).c_str(), nullptr, 10);
      else if (name == "k" && !value.empty())
        kind = value[0];
      else if (name == "b")
        body = value;
    }
    auto it = flight_.find(job);
    if (it == flight_.end() || kind == 0) {
      ++stats_.duplicates_dropped;
      continue;
    }
    cl_call* c = it->second;
    flight_.erase(it);
    ++stats_.results;
    c->kind = kind;
    c->body.assign(body.begin(), body.end());
    finish(c, kind == proto::kind_dead ? cl_outcome::dead : cl_outcome::answered);
  }
  // res_ just answered an XREAD (nothing is parked on it): the XDEL goes there,
  // in the same write as the next XREAD.
  if (std::shared_ptr<redis_connection> conn = res_ && res_->alive() ? res_ : cmd_;
      del.size() > 2 && conn && conn->alive()) {
    std::vector<std::string_view> v(del.begin(), del.end());
    conn->send(v, [](redis_reply, const std::string&) {});
  }
  pump();
}

// ---- connection supervision -------------------------------------------------

void cluster_core::disconnect(const std::string& why) noexcept {
  const bool was = connected_;
  connected_ = false;
  res_idle_ = false;
  if (cmd_) cmd_->close(why);
  if (res_) res_->close(why);
  cmd_.reset();
  res_.reset();
  last_error_ = why;
  if (was || down_since_ == clock::time_point{}) down_since_ = clock::now();
  // An XADD not acknowledged may or may not be in Redis: recover() resends it.
  (void)was;
}

task<void> cluster_core::recover(bool reconnect) {
  // (1) Results that arrived while we were away.
  for (;;) {
    std::vector<std::string> cmd_args1{"XREAD", "COUNT", "4096", "STREAMS", res_key_, last_id_};
    redis_reply r = co_await res_->command(
        std::move(cmd_args1));
    if (std::string_view err = reply_error(r.get()); !err.empty())
      throw broker_error("Redis at " + ep_.name() + " refused XREAD: " + std::string(err));
    if (r->type != REDIS_REPLY_ARRAY) break;
    const std::string before = last_id_;
    on_results(r.get());
    if (last_id_ == before) break;
  }
  // (2) Jobs Redis no longer has, and (3) jobs never acknowledged: send again.
  std::vector<cl_call*> resend;
  std::vector<cl_call*> check;
  for (auto& [job, c] : flight_) (c->stream_id.empty() ? resend : check).push_back(c);
  if (reconnect && !check.empty()) {
    std::vector<std::vector<std::string>> q;
    for (cl_call* c : check) q.push_back({"XRANGE", jobs_key_, c->stream_id, c->stream_id});
    std::vector<redis_reply> rs = co_await cmd_->pipeline(std::move(q));
    for (std::size_t i = 0; i < check.size(); ++i) {
      cl_call* c = check[i];
      if (!c->in_flight || flight_.find(c->job) == flight_.end()) continue;  // answered meanwhile
      const redisReply* r = rs[i].get();
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) resend.push_back(c);
    }
  }
  std::sort(resend.begin(), resend.end(), [](cl_call* a, cl_call* b) { return a->job < b->job; });
  for (cl_call* c : resend) {
    if (flight_.find(c->job) == flight_.end()) continue;
    c->stream_id.clear();
    send_job(c);
  }
}

task<void> cluster_core::supervise(std::shared_ptr<cluster_core> self) {
  self->supervising_ = true;
  auto backoff = std::chrono::milliseconds(10);
  const auto cap = std::clamp(self->opts_.broker_timeout / 4, std::chrono::milliseconds(10),
                              std::chrono::milliseconds(1000));
  // XREAD blocks this long at most, so a closed pool or dead socket is noticed.
  const auto block = std::clamp(self->opts_.broker_timeout / 2, std::chrono::milliseconds(10),
                                std::chrono::milliseconds(2000));
  while (!self->closed_) {
    std::string why;
    bool permanent = false;
    try {
      auto cmd = co_await redis_connection::open(self->ep_, self->opts_.broker_timeout);
      std::shared_ptr<redis_connection> res;
      try {
        res = co_await redis_connection::open(self->ep_, self->opts_.broker_timeout);
      } catch (...) {
        cmd->close("connect failed");
        throw;
      }
      if (self->closed_) {
        cmd->close("the cluster_pool was shut down");
        res->close("the cluster_pool was shut down");
        break;
      }
      std::weak_ptr<redis_connection> wres = res, wcmd = cmd;
      cmd->on_fail = [wres](const std::string& w) {
        if (auto r = wres.lock()) r->close(w);
      };
      res->on_fail = [wcmd](const std::string& w) {
        if (auto c = wcmd.lock()) c->close(w);
      };
      std::vector<std::string> cmd_args2{"XGROUP", "CREATE", self->jobs_key_, self->group_, "0", "MKSTREAM"};
      redis_reply g = co_await cmd->command(
          std::move(cmd_args2));
      if (std::string_view err = reply_error(g.get()); !err.empty() && !err.starts_with("BUSYGROUP"))
        throw broker_error("Redis at " + self->ep_.name() + " refused XGROUP CREATE: " +
                           std::string(err));
      self->cmd_ = cmd;
      self->res_ = res;
      const bool reconnect = self->ever_connected_;
      co_await self->recover(reconnect);
      if (reconnect) ++self->stats_.reconnects;
      self->ever_connected_ = true;
      self->connected_ = true;
      self->circuit_open_ = false;
      self->down_since_ = {};
      self->last_error_.clear();
      backoff = std::chrono::milliseconds(10);
      self->state_changed_.set();
      self->state_changed_.clear();
      self->pump();
      const std::string block_ms = std::to_string(block.count());
      while (!self->closed_) {
        std::vector<std::string> cmd_args3{"XREAD", "COUNT", "4096", "BLOCK", block_ms, "STREAMS", self->res_key_, self->last_id_};
        redis_reply r = co_await res->command(
            std::move(cmd_args3));
        if (std::string_view err = reply_error(r.get()); !err.empty())
          throw broker_error("Redis at " + self->ep_.name() + " refused XREAD: " + std::string(err));
        if (r->type != REDIS_REPLY_ARRAY) continue;  // BLOCK timed out
        self->res_idle_ = true;
        self->on_results(r.get());
        // The calls just finished run first, so the calls they make next go out on
        // res ahead of the next XREAD, in one write with it: per call one socket for
        // Redis to read instead of two.
        co_await yield_now();
        self->res_idle_ = false;
      }
    } catch (const broker_error& e) {
      why = std::string(e.what()).substr(6);  // without "eddy: "
      permanent = why.find("refused the login") != std::string::npos;
    } catch (const cancelled_error&) {
      break;  // the loop is closing
    } catch (const std::exception& e) {
      why = "Redis at " + self->ep_.name() + ": " + e.what();
    }
    if (self->closed_) break;
    self->disconnect(why);
    // A refused login does not mend by waiting: fail now, keep retrying quietly.
    if (permanent || clock::now() - self->down_since_ >= self->opts_.broker_timeout) {
      self->circuit_open_ = true;
      self->fail_all(why);
      self->state_changed_.set();
      self->state_changed_.clear();
    }
    try {
      co_await sleep_for(backoff);
    } catch (...) {
      break;
    }
    backoff = std::min(backoff * 2, cap);
  }
  self->disconnect(self->closed_ ? "the cluster_pool was shut down" : "the loop is closing");
  self->supervising_ = false;
  self->supervisor_done_.set();
}

void cluster_core::close() noexcept {
  if (closed_) return;
  closed_ = true;
  fail_all("the cluster_pool was shut down");
  if (cmd_) cmd_->close("the cluster_pool was shut down");
  if (res_) res_->close("the cluster_pool was shut down");
  state_changed_.set();
  state_changed_.clear();
}

task<void> cluster_core::wait_connected() {
  for (;;) {
    if (connected_) co_return;
    if (closed_) throw broker_error("the cluster_pool was shut down");
    if (circuit_open_) throw broker_error(last_error_);
    co_await state_changed_.wait();
  }
}

task<void> cluster_core::shutdown() {
  if (!closed_ && cmd_ && cmd_->alive()) {
    auto cmd = cmd_;
    try {
      std::vector<std::string> cmd_args4{"DEL", res_key_};
      co_await with_timeout(opts_.broker_timeout, cmd->command(std::move(cmd_args4)));
    } catch (const cancelled_error&) {
      throw;
    } catch (...) {
    }
  }
  close();
  if (supervising_) co_await supervisor_done_.wait();
}

}  // namespace detail

// ---- public entry points ----------------------------------------------------

namespace detail {

task<std::vector<char>> cluster_exchange(std::shared_ptr<cluster_core> core,
                                         const remote_entry* entry, std::vector<char> args) {
  cl_call c;
  c.core = core.get();
  c.entry = entry;
  c.args = std::move(args);
  co_await c;
  switch (c.out) {
    case cl_outcome::answered:
      if (c.kind == proto::kind_result) co_return std::move(c.body);
      throw_remote_reply(c.kind == proto::kind_raised ? remote_reply::raised : remote_reply::rejected,
                         entry->name, c.body);
    case cl_outcome::dead:
      throw dead_letter_error("remote call '" + entry->name + "': " +
                              std::string(c.body.begin(), c.body.end()));
    case cl_outcome::broker:
      throw broker_error(c.message);
    case cl_outcome::cancelled:
      throw cancelled_error{};
    case cl_outcome::pending:
      break;
  }
  throw std::logic_error("eddy: cluster_pool: call resumed while pending");
}

std::shared_ptr<cluster_core> make_cluster_core(loop& l, std::string_view url,
                                                const cluster_pool_options& opts) {
  auto c = std::make_shared<cluster_core>(l, url, opts);
  c->start();
  return c;
}
void close_cluster_core(cluster_core& core) noexcept { core.close(); }
task<void> shutdown_cluster_core(std::shared_ptr<cluster_core> core) { co_await core->shutdown(); }
task<void> cluster_core_connected(std::shared_ptr<cluster_core> core) {
  co_await core->wait_connected();
}
cluster_pool_stats cluster_core_stats(const cluster_core& core) noexcept { return core.stats(); }
const std::string& cluster_core_caller(const cluster_core& core) noexcept { return core.caller(); }
void cluster_check_size(const cluster_core& core, std::string_view name, std::size_t n) {
  if (n > core.max_message())
    throw remote_call_error("arguments of '" + std::string(name) + "' are " + std::to_string(n) +
                            " bytes, above cluster_pool_options.max_message_size (" +
                            std::to_string(core.max_message()) + ")");
}

}  // namespace detail

cluster_pool::cluster_pool(std::string_view url, cluster_pool_options options)
    : cluster_pool(loop::current(), url, std::move(options)) {}

cluster_pool::cluster_pool(loop& l, std::string_view url, cluster_pool_options options)
    : core_(detail::make_cluster_core(l, url, options)) {}

cluster_pool::~cluster_pool() {
  if (core_) detail::close_cluster_core(*core_);
}

}  // namespace eddy
