// echo_load: the load generator every echo server in BENCHMARKS.md is measured with.
// Deliberately does not use eddy: plain epoll, one loop per thread, so it is the same
// yardstick for eddy, Boost.Asio, uvloop, Node.js and the hand-written epoll server.
//
// Model: each connection's byte stream is a deterministic pattern (see Pattern), so an
// echo can be verified by position without keeping a copy of what was sent. Message j of
// a connection is the stream bytes [j*size, (j+1)*size); it completes when that many
// bytes have been read back. Up to --pipeline messages are outstanding.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "histogram.hpp"

namespace echo_load {
namespace {

std::int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Largest single recv(). Big enough that a 16 MiB echo needs few calls; one per thread.
constexpr std::size_t kReadChunk = 256 * 1024;

// One read-only table shared by all threads. Connection c's stream byte at offset i is
// bytes[(base_c + i) % kPeriod]. The period is prime, so consecutive messages of one
// connection differ (unless size is a multiple of it) and a server that replays an old
// message or mixes connections up is caught; bases differ per connection. The table
// runs kPeriod + span bytes so any send or any received chunk (<= span) starting
// inside the period is one contiguous memcmp/send, with no wrap-around.
struct Pattern {
  static constexpr std::uint64_t kPeriod = 65521;
  std::vector<unsigned char> bytes;

  explicit Pattern(std::size_t span) : bytes(kPeriod + span) {
    std::uint64_t x = 0x9e3779b97f4a7c15u;  // splitmix64: cheap, no visible structure
    for (std::size_t i = 0; i < kPeriod; ++i) {
      x += 0x9e3779b97f4a7c15u;
      std::uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
      bytes[i] = static_cast<unsigned char>(z ^ (z >> 31));
    }
    for (std::size_t i = kPeriod; i < bytes.size(); ++i) bytes[i] = bytes[i % kPeriod];
  }
  static std::uint64_t base_for(std::uint32_t conn_id) {
    return (std::uint64_t{conn_id} * 40503u) % kPeriod;
  }
};

struct Errors {
  std::uint64_t connect = 0, reset = 0, eof = 0, mismatch = 0;
  std::uint64_t total() const { return connect + reset + eof + mismatch; }
  void add(const Errors& o) {
    connect += o.connect;
    reset += o.reset;
    eof += o.eof;
    mismatch += o.mismatch;
  }
};

// What every thread reads and nobody writes once the threads run.
struct Plan {
  Options opt;
  sockaddr_storage addr{};
  socklen_t addrlen = 0;
  const Pattern* pattern = nullptr;
  std::int64_t t0 = 0;         // start: connect, then warm up
  std::int64_t t_measure = 0;  // completions from here on are counted
  std::int64_t t_end = 0;      // every thread stops here, whatever state it is in
};

struct Result {
  LatencyHistogram hist;
  // Rate mode: how late each request went out against its intended time. Large values
  // mean the client (not the server) fell behind, and the latency figures are suspect.
  LatencyHistogram lag;
  // Requests of the measured window still unanswered at the end (in flight, or in rate
  // mode due but held back), by age at t_end. Without them a server that hangs near the
  // end would show a clean tail; main() folds the ones older than any completed request
  // into `hist` and reports how many as "late".
  LatencyHistogram unfinished;
  std::uint64_t requests = 0;  // completed inside the measured window
  Errors errors;
  std::uint32_t connected = 0;  // connections that ever completed connect()
  std::uint32_t alive = 0;      // still open when the run ended
};

enum class State : std::uint8_t { Connecting, Open, Dead };

struct Conn {
  int fd = -1;
  State state = State::Connecting;
  bool want_out = false;              // EPOLLOUT armed: a send hit EAGAIN
  bool timer_armed = false;           // rate mode: an entry for this connection is in the heap
  std::uint32_t id = 0;               // global connection number, 0..conns-1
  std::uint64_t base = 0;             // pattern offset of stream byte 0
  std::uint64_t sent = 0, recvd = 0;  // stream bytes
  std::uint64_t issued = 0, completed = 0;  // messages
  std::uint64_t slot = 0;                   // rate mode: next slot on this connection's timeline
};

// epoll usage: level-triggered, EPOLLIN always on, EPOLLOUT only while a send is blocked.
// For small messages that is one recv() per readiness and no epoll_ctl at all, the same
// syscall count edge-triggered mode would give, without ET's need to read until EAGAIN
// (one wasted recv per wakeup) and without a writable socket waking us on every wait.
class Worker {
 public:
  Worker(const Plan& plan, std::uint32_t first_id, std::uint32_t stride)
      : p_(plan),
        o_(plan.opt),
        pat_(plan.pattern->bytes.data()),
        rbuf_(new unsigned char[kReadChunk]) {
    for (std::uint32_t id = first_id; id < o_.conns; id += stride) {
      conns_.emplace_back();
      conns_.back().id = id;
      conns_.back().base = Pattern::base_for(id);
    }
    starts_.assign(conns_.size() * o_.pipeline, 0);
  }

  Result run() {
    // Rate mode sleeps to exact send times; the default 50 us timer slack would add
    // that much (unmeasured by us, charged to the server) to every scheduled send.
    if (o_.rate > 0) prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      std::perror("echo_load: epoll_create1");
      res_.errors.connect += conns_.size();
      return std::move(res_);
    }
    for (std::size_t i = 0; i < conns_.size(); ++i) start_connect(i);
    loop();
    collect_unfinished();
    for (auto& c : conns_) {
      if (c.state == State::Connecting) ++res_.errors.connect;  // never completed
      if (c.state == State::Open) ++res_.alive;
      if (c.fd >= 0) close(c.fd);
    }
    close(epfd_);
    return std::move(res_);
  }

 private:
  using Timer = std::pair<std::int64_t, std::size_t>;  // (when, connection index)

  void loop() {
    epoll_event evs[512];
    bool have_pwait2 = true;
    while (live_ > 0) {
      std::int64_t now = mono_ns();
      if (now >= p_.t_end) return;
      while (!timers_.empty() && timers_.top().first <= now) {
        std::size_t i = timers_.top().second;
        timers_.pop();
        conns_[i].timer_armed = false;
        if (conns_[i].state == State::Open) pump(i, now);
      }
      std::int64_t wake = p_.t_end;
      if (!timers_.empty()) wake = std::min(wake, timers_.top().first);
      std::int64_t wait = std::max<std::int64_t>(wake - mono_ns(), 0);
      int n;
      if (have_pwait2) {
        // Nanosecond timeout: epoll_wait's milliseconds would quantise --rate sends.
        timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
        n = epoll_pwait2(epfd_, evs, 512, &ts, nullptr);
        if (n < 0 && errno == ENOSYS) {
          have_pwait2 = false;
          continue;
        }
      } else {
        n = epoll_wait(epfd_, evs, 512, static_cast<int>((wait + 999999) / 1000000));
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("echo_load: epoll_wait");
        return;
      }
      for (int k = 0; k < n; ++k) on_event(evs[k].data.u64, evs[k].events);
    }
  }

  void collect_unfinished() {
    // A full stall at a high --rate could leave a huge backlog of slots; this bounds the
    // tally (each connection's oldest, which move the tail most, are counted first).
    std::uint64_t budget = 50'000'000;
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      const Conn& c = conns_[i];
      if (c.state != State::Open) continue;
      const std::int64_t* starts = &starts_[i * o_.pipeline];
      for (std::uint64_t m = c.completed; m < c.issued; ++m) {
        std::int64_t s = starts[m % o_.pipeline];
        // Sends of the loop's last pass can postdate t_end: outside the window.
        if (s >= p_.t_measure && s < p_.t_end)
          res_.unfinished.record(static_cast<std::uint64_t>(p_.t_end - s));
      }
      if (o_.rate <= 0) continue;
      for (std::uint64_t slot = c.slot; budget > 0; ++slot, --budget) {
        std::int64_t t = intended(c, slot);
        if (t >= p_.t_end) break;
        if (t >= p_.t_measure) res_.unfinished.record(static_cast<std::uint64_t>(p_.t_end - t));
      }
    }
  }

  void start_connect(std::size_t i) {
    Conn& c = conns_[i];
    c.fd = socket(p_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      if (!warned_socket_) std::fprintf(stderr, "echo_load: socket: %s\n", std::strerror(errno));
      warned_socket_ = true;
      c.state = State::Dead;
      ++res_.errors.connect;
      return;
    }
    int one = 1;
    // Requests are small and latency-bound: never let Nagle hold one back.
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r = connect(c.fd, reinterpret_cast<const sockaddr*>(&p_.addr), p_.addrlen);
    if (r < 0 && errno != EINPROGRESS) {
      if (!warned_connect_) std::fprintf(stderr, "echo_load: connect: %s\n", std::strerror(errno));
      warned_connect_ = true;
      close(c.fd);
      c.fd = -1;
      c.state = State::Dead;
      ++res_.errors.connect;
      return;
    }
    ++live_;
    epoll_event ev{};
    ev.events = r == 0 ? EPOLLIN : EPOLLOUT;  // writability reports connect completion
    ev.data.u64 = i;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
    if (r == 0) on_connected(i, mono_ns());
  }

  void on_connected(std::size_t i, std::int64_t now) {
    Conn& c = conns_[i];
    c.state = State::Open;
    ++res_.connected;
    if (o_.rate > 0) {
      // Join the shared timeline at the first slot not in the past, so a connection that
      // connects late does not owe (and burst) the sends it was never able to make.
      double slots = (static_cast<double>(now - p_.t0) * o_.rate / 1e9 - c.id) / o_.conns;
      c.slot = slots > 0 ? static_cast<std::uint64_t>(std::ceil(slots)) : 0;
    }
    pump(i, now);
  }

  // Rate mode: slot j of connection id is global request number j*conns + id, sent at
  // t0 + that / rate. The connections interleave into one evenly spaced stream of R/s.
  std::int64_t intended(const Conn& c, std::uint64_t slot) const {
    double g = static_cast<double>(slot) * o_.conns + c.id;
    return p_.t0 + static_cast<std::int64_t>(g * 1e9 / o_.rate);
  }

  // Issue every message that may go now, then write what is unsent.
  void pump(std::size_t i, std::int64_t now) {
    Conn& c = conns_[i];
    std::int64_t* starts = &starts_[i * o_.pipeline];
    const std::uint64_t limit = c.completed + o_.pipeline;
    if (o_.rate <= 0) {
      // Closed loop: the round trip starts when the message is handed to the socket.
      for (; c.issued < limit; ++c.issued) starts[c.issued % o_.pipeline] = now;
    } else {
      // Latency runs from the intended time, not from when we got round to it: a request
      // held back by a slow previous one still charges the server the wait (as wrk2).
      for (; c.issued < limit; ++c.issued, ++c.slot) {
        std::int64_t t = intended(c, c.slot);
        if (t > now) {
          if (!c.timer_armed) timers_.emplace(t, i);
          c.timer_armed = true;
          break;
        }
        starts[c.issued % o_.pipeline] = t;
        if (now >= p_.t_measure) res_.lag.record(static_cast<std::uint64_t>(now - t));
      }
    }
    flush(i);
  }

  void flush(std::size_t i) {
    Conn& c = conns_[i];
    const std::uint64_t target = c.issued * o_.size;
    const std::uint64_t table = p_.pattern->bytes.size();
    while (c.sent < target) {
      std::uint64_t off = (c.base + c.sent) % Pattern::kPeriod;
      std::size_t len = static_cast<std::size_t>(std::min(target - c.sent, table - off));
      ssize_t n = send(c.fd, pat_ + off, len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.sent += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!c.want_out) set_interest(i, EPOLLIN | EPOLLOUT);
        c.want_out = true;
        return;
      }
      fail(i, res_.errors.reset);
      return;
    }
    if (c.want_out) set_interest(i, EPOLLIN);
    c.want_out = false;
  }

  void set_interest(std::size_t i, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = i;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, conns_[i].fd, &ev);
  }

  void on_event(std::size_t i, std::uint32_t events) {
    Conn& c = conns_[i];
    if (c.state == State::Dead) return;
    if (c.state == State::Connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
        if (!warned_connect_)
          std::fprintf(stderr, "echo_load: connect: %s\n", std::strerror(err ? err : ECONNRESET));
        warned_connect_ = true;
        fail(i, res_.errors.connect);
        return;
      }
      set_interest(i, EPOLLIN);
      on_connected(i, mono_ns());
      return;
    }
    // EPOLLERR/EPOLLHUP also go through recv(), which reports the precise error or EOF.
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(i);
    if (c.state == State::Open && (events & EPOLLOUT) && c.want_out) flush(i);
  }

  void on_readable(std::size_t i) {
    Conn& c = conns_[i];
    ssize_t n = recv(c.fd, rbuf_.get(), kReadChunk, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      fail(i, res_.errors.reset);
      return;
    }
    if (n == 0) {  // the server closed: whatever was outstanding is a short read
      fail(i, res_.errors.eof);
      return;
    }
    const auto got = static_cast<std::uint64_t>(n);
    const std::uint64_t off = (c.base + c.recvd) % Pattern::kPeriod;
    // Bytes beyond what was sent cannot be an echo; otherwise compare by position.
    if (c.recvd + got > c.sent || std::memcmp(rbuf_.get(), pat_ + off, got) != 0) {
      fail(i, res_.errors.mismatch);
      return;
    }
    c.recvd += got;
    const std::uint64_t done = c.recvd / o_.size;
    if (done == c.completed) return;  // mid-message: nothing to time or send yet
    const std::int64_t now = mono_ns();
    const std::int64_t* starts = &starts_[i * o_.pipeline];
    for (; c.completed < done; ++c.completed) {
      if (now < p_.t_measure || now >= p_.t_end) continue;  // outside the window
      ++res_.requests;
      res_.hist.record(static_cast<std::uint64_t>(now - starts[c.completed % o_.pipeline]));
    }
    pump(i, now);
  }

  void fail(std::size_t i, std::uint64_t& counter) {
    Conn& c = conns_[i];
    ++counter;
    close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
    c.state = State::Dead;
    --live_;
  }

  const Plan& p_;
  const Options& o_;
  const unsigned char* pat_;
  std::unique_ptr<unsigned char[]> rbuf_;  // verified and dropped at once: one per thread
  std::vector<Conn> conns_;
  std::vector<std::int64_t> starts_;  // send time of each outstanding message, pipeline per conn
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  Result res_;
  int epfd_ = -1;
  std::size_t live_ = 0;
  bool warned_socket_ = false, warned_connect_ = false;  // report the first failure's cause
};

bool resolve(Plan& plan) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(plan.opt.port);
  int rc = getaddrinfo(plan.opt.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    std::fprintf(stderr, "echo_load: HOST '%s' does not resolve: %s\n", plan.opt.host.c_str(),
                 rc ? gai_strerror(rc) : "no address");
    return false;
  }
  // The first answer is the one getaddrinfo prefers (RFC 6724 order); every connection
  // uses it so a run never measures two address families at once.
  std::memcpy(&plan.addr, res->ai_addr, res->ai_addrlen);
  plan.addrlen = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

void raise_fd_limit(std::uint64_t needed) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= needed) return;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < needed)
    std::fprintf(stderr,
                 "echo_load: warning: need %" PRIu64
                 " file descriptors but the hard limit is "
                 "%llu; connections beyond it will fail and count as connect errors\n",
                 needed, static_cast<unsigned long long>(rl.rlim_max));
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    std::fprintf(stderr, "echo_load: warning: cannot raise RLIMIT_NOFILE to %llu: %s\n",
                 static_cast<unsigned long long>(rl.rlim_max), std::strerror(errno));
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

void report(const Plan& plan, std::uint32_t threads, const Result& r, std::uint64_t late) {
  const Options& o = plan.opt;
  const double rps = static_cast<double>(r.requests) / o.secs;
  const double mibs = rps * o.size / (1024.0 * 1024.0);
  auto us = [](const LatencyHistogram& h, double q) {
    return static_cast<double>(q >= 1 ? h.max() : h.percentile(q)) / 1000.0;
  };
  const LatencyHistogram& h = r.hist;
  const Errors& e = r.errors;
  if (o.json) {
    std::printf(
        "{\"host\":\"%s\",\"port\":%u,\"conns\":%u,\"size\":%u,\"pipeline\":%u,"
        "\"threads\":%u,\"secs\":%g,\"warmup\":%g,\"rate\":%g,\"requests\":%" PRIu64
        ",\"req_per_s\":%.1f,\"mib_per_s_each_way\":%.3f,",
        json_escape(o.host).c_str(), o.port, o.conns, o.size, o.pipeline, threads, o.secs, o.warmup,
        o.rate, r.requests, rps, mibs);
    std::printf(
        "\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
        "\"mean\":%.1f},",
        us(h, 0.5), us(h, 0.99), us(h, 0.999), us(h, 1), h.mean() / 1000.0);
    if (o.rate > 0)
      std::printf("\"send_lag_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},", us(r.lag, 0.5),
                  us(r.lag, 0.99), us(r.lag, 1));
    std::printf("\"late\":%" PRIu64 ",", late);
    std::printf("\"errors\":{\"total\":%" PRIu64 ",\"connect\":%" PRIu64 ",\"reset\":%" PRIu64
                ",\"eof\":%" PRIu64 ",\"mismatch\":%" PRIu64 "},\"connected\":%u,\"alive\":%u}\n",
                e.total(), e.connect, e.reset, e.eof, e.mismatch, r.connected, r.alive);
    return;
  }
  std::printf("req/s=%.0f MiB/s=%.2f(each way) p50=%.1fus p99=%.1fus p99.9=%.1fus max=%.1fus ", rps,
              mibs, us(h, 0.5), us(h, 0.99), us(h, 0.999), us(h, 1));
  if (o.rate > 0) std::printf("send_lag_p99=%.1fus ", us(r.lag, 0.99));
  std::printf("late=%" PRIu64 " ", late);
  std::printf("errors=%" PRIu64 "(connect=%" PRIu64 " reset=%" PRIu64 " eof=%" PRIu64
              " mismatch=%" PRIu64
              ") conns=%u alive=%u size=%u pipeline=%u threads=%u rate=%g "
              "secs=%g\n",
              e.total(), e.connect, e.reset, e.eof, e.mismatch, o.conns, r.alive, o.size,
              o.pipeline, threads, o.rate, o.secs);
}

}  // namespace
}  // namespace echo_load

int main(int argc, char** argv) {
  using namespace echo_load;
  ParseResult pr = parse_args(argc, argv);
  if (pr.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!pr.error.empty()) {
    std::fprintf(stderr, "echo_load: %s\nTry 'echo_load --help'.\n", pr.error.c_str());
    return 2;
  }
  Plan plan;
  plan.opt = pr.opt;
  if (!resolve(plan)) return 2;
  signal(SIGPIPE, SIG_IGN);  // MSG_NOSIGNAL covers send(); this covers anything else

  const std::uint32_t threads = std::min(plan.opt.threads, plan.opt.conns);
  if (threads < plan.opt.threads)
    std::fprintf(stderr, "echo_load: note: --threads %u capped at --conns %u\n", plan.opt.threads,
                 plan.opt.conns);
  // Sockets plus one epoll fd per thread plus stdio and slack.
  raise_fd_limit(std::uint64_t{plan.opt.conns} + threads + 16);

  const Pattern pattern(std::max<std::size_t>(plan.opt.size, kReadChunk));
  plan.pattern = &pattern;
  plan.t0 = mono_ns();
  plan.t_measure = plan.t0 + static_cast<std::int64_t>(plan.opt.warmup * 1e9);
  plan.t_end = plan.t_measure + static_cast<std::int64_t>(plan.opt.secs * 1e9);

  std::vector<Result> results(threads);
  std::vector<std::thread> pool;
  for (std::uint32_t t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { results[t] = Worker(plan, t, threads).run(); });
  for (auto& th : pool) th.join();

  Result total;
  for (const auto& r : results) {
    total.hist.merge(r.hist);
    total.lag.merge(r.lag);
    total.unfinished.merge(r.unfinished);
    total.requests += r.requests;
    total.errors.add(r.errors);
    total.connected += r.connected;
    total.alive += r.alive;
  }
  // Only unfinished requests older than every completed one are added: they are the
  // hidden tail. Younger ones are ordinary in-flight requests and would bias it down.
  const std::uint64_t late = total.hist.merge_above(total.unfinished, total.hist.max());
  report(plan, threads, total, late);
  return total.errors.total() ? 1 : 0;
}
