// The load model echo_load's engines share: the byte pattern, the run plan, the result,
// and ConnCore, which holds everything about a connection that does not depend on how
// bytes reach the socket (issuing messages, rate-mode slots and timers, verifying and
// timing echoes, the end-of-run tally). An engine (epoll_engine.cpp, uring_engine.cpp)
// adds only the I/O: connect, send what ConnCore says is unsent, hand received bytes
// back to it, and close.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "args.hpp"
#include "histogram.hpp"

namespace echo_load {

inline std::int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Largest single recv(). Big enough that a 16 MiB echo needs few calls; one per thread.
// Also the least span of the pattern table (main), so any received chunk is one memcmp.
inline constexpr std::size_t kReadChunk = 256 * 1024;

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
  bool timer_armed = false;  // rate mode: an entry for this connection is in the heap
  // Engine-owned flags (each engine uses its own, the other's stay false).
  bool want_out = false;       // epoll: EPOLLOUT armed, a send hit EAGAIN
  bool send_busy = false;      // uring: a SEND is in flight (at most one: order)
  bool recv_armed = false;     // uring: the multishot RECV is live
  std::uint32_t send_len = 0;  // uring: length of the SEND in flight
  std::uint32_t id = 0;        // global connection number, 0..conns-1
  std::uint64_t base = 0;      // pattern offset of stream byte 0
  std::uint64_t sent = 0, recvd = 0;        // stream bytes
  std::uint64_t issued = 0, completed = 0;  // messages
  std::uint64_t slot = 0;  // rate mode: next slot on this connection's timeline
};

// The per-thread model state and every rule that is not I/O. Engines derive from it.
class ConnCore {
 public:
  ConnCore(const Plan& plan, std::uint32_t first_id, std::uint32_t stride)
      : p_(plan), o_(plan.opt), pat_(plan.pattern->bytes.data()) {
    for (std::uint32_t id = first_id; id < o_.conns; id += stride) {
      conns_.emplace_back();
      conns_.back().id = id;
      conns_.back().base = Pattern::base_for(id);
    }
    starts_.assign(conns_.size() * o_.pipeline, 0);
  }

 protected:
  using Timer = std::pair<std::int64_t, std::size_t>;  // (when, connection index)

  // A TCP socket for connection i (with `extra` socket() flags), TCP_NODELAY on.
  // On failure the connection is dead, counted as a connect error, and the first
  // cause is printed; returns false.
  bool open_socket(std::size_t i, int extra) {
    Conn& c = conns_[i];
    c.fd = socket(p_.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | extra, 0);
    if (c.fd < 0) {
      if (!warned_socket_) std::fprintf(stderr, "echo_load: socket: %s\n", std::strerror(errno));
      warned_socket_ = true;
      c.state = State::Dead;
      ++res_.errors.connect;
      return false;
    }
    int one = 1;
    // Requests are small and latency-bound: never let Nagle hold one back.
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return true;
  }

  // connect() completed: join the run (rate mode: at the first slot not in the past, so
  // a connection that connects late does not owe, and burst, the sends it never could
  // make). The engine then calls its pump.
  void connected(std::size_t i, std::int64_t now) {
    Conn& c = conns_[i];
    c.state = State::Open;
    ++res_.connected;
    if (o_.rate > 0) {
      double slots = (static_cast<double>(now - p_.t0) * o_.rate / 1e9 - c.id) / o_.conns;
      c.slot = slots > 0 ? static_cast<std::uint64_t>(std::ceil(slots)) : 0;
    }
  }

  // Rate mode: slot j of connection id is global request number j*conns + id, sent at
  // t0 + that / rate. The connections interleave into one evenly spaced stream of R/s.
  std::int64_t intended(const Conn& c, std::uint64_t slot) const {
    double g = static_cast<double>(slot) * o_.conns + c.id;
    return p_.t0 + static_cast<std::int64_t>(g * 1e9 / o_.rate);
  }

  // Issue every message that may go now (the engine then sends up to issued * size).
  void issue(std::size_t i, std::int64_t now) {
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
  }

  // Pops every due rate-mode timer and calls pump(i, now) for open connections.
  template <class Pump>
  void fire_timers(std::int64_t now, Pump&& pump) {
    while (!timers_.empty() && timers_.top().first <= now) {
      std::size_t i = timers_.top().second;
      timers_.pop();
      conns_[i].timer_armed = false;
      if (conns_[i].state == State::Open) pump(i, now);
    }
  }

  // When the loop must wake next: the earliest timer, or t_end.
  std::int64_t next_wake() const {
    std::int64_t wake = p_.t_end;
    if (!timers_.empty()) wake = std::min(wake, timers_.top().first);
    return wake;
  }

  // The next piece to send: table offset and length (contiguous in the table), or
  // length 0 when everything issued is sent.
  std::pair<std::uint64_t, std::size_t> unsent(const Conn& c) const {
    const std::uint64_t target = c.issued * o_.size;
    if (c.sent >= target) return {0, 0};
    const std::uint64_t off = (c.base + c.sent) % Pattern::kPeriod;
    const std::uint64_t table = p_.pattern->bytes.size();
    return {off, static_cast<std::size_t>(std::min(target - c.sent, table - off))};
  }

  enum class Rx { Mismatch, Partial, Completed };

  // `got` bytes arrived on connection i. `bound` is how far the stream has been handed
  // to the kernel: bytes beyond it cannot be an echo; otherwise they are compared by
  // position. On Completed, *now is the completion time (the engine pumps with it).
  Rx received(std::size_t i, const unsigned char* data, std::uint64_t got, std::uint64_t bound,
              std::int64_t* now_out) {
    Conn& c = conns_[i];
    const std::uint64_t off = (c.base + c.recvd) % Pattern::kPeriod;
    if (c.recvd + got > bound || std::memcmp(data, pat_ + off, got) != 0) return Rx::Mismatch;
    c.recvd += got;
    const std::uint64_t done = c.recvd / o_.size;
    if (done == c.completed) return Rx::Partial;  // mid-message: nothing to time or send yet
    const std::int64_t now = mono_ns();
    const std::int64_t* starts = &starts_[i * o_.pipeline];
    for (; c.completed < done; ++c.completed) {
      if (now < p_.t_measure || now >= p_.t_end) continue;  // outside the window
      ++res_.requests;
      res_.hist.record(static_cast<std::uint64_t>(now - starts[c.completed % o_.pipeline]));
    }
    *now_out = now;
    return Rx::Completed;
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

  // End of run: unfinished requests, connections that never connected, the alive count.
  // The engine closes the descriptors.
  void tally_end() {
    collect_unfinished();
    for (const auto& c : conns_) {
      if (c.state == State::Connecting) ++res_.errors.connect;  // never completed
      if (c.state == State::Open) ++res_.alive;
    }
  }

  const Plan& p_;
  const Options& o_;
  const unsigned char* pat_;
  std::vector<Conn> conns_;
  std::vector<std::int64_t> starts_;  // send time of each outstanding message, pipeline per conn
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  Result res_;
  std::size_t live_ = 0;  // connections not Dead (connecting or open)
  bool warned_socket_ = false, warned_connect_ = false;  // report the first failure's cause
};

// Each engine runs one thread's share of the connections (ids first_id, first_id +
// stride, ...) until plan.t_end and returns what it measured.
Result run_epoll(const Plan& plan, std::uint32_t first_id, std::uint32_t stride);
#ifdef ECHO_LOAD_HAVE_URING
Result run_uring(const Plan& plan, std::uint32_t first_id, std::uint32_t stride);
// Empty when a ring can be set up here, else why not (checked once, before any thread).
std::string uring_unavailable();
#endif

}  // namespace echo_load
