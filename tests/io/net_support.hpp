// Helpers for the socket tests: an echo server on a listener, payloads with
// checksums, a loopback listener on a free port, and a check that adopting an fd
// of the wrong kind is refused.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <eddy/eddy.hpp>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace eddy_test {

inline std::vector<std::byte> payload(std::size_t n, std::uint32_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

inline std::uint64_t checksum(std::span<const std::byte> b,
                              std::uint64_t h = 1469598103934665603ull) {
  for (std::byte x : b) h = (h ^ static_cast<std::uint8_t>(x)) * 1099511628211ull;
  return h;
}

// Writes `data` and ends the stream (shutdown_write: awaited where it is a task, as
// close_notify is over TLS) while reading what comes back, up to end of stream, at
// the same time (a 16 MiB write would otherwise deadlock against a full echo path).
// Expects `expect` bytes back and returns their checksum.
template <class Stream>
eddy::task<std::uint64_t> send_and_read_back(Stream* c, std::span<const std::byte> data,
                                             std::size_t expect) {
  auto writer = [](Stream* c, std::span<const std::byte> d) -> eddy::task<void> {
    co_await c->write_all(d);
    if constexpr (std::is_void_v<decltype(c->shutdown_write())>)
      c->shutdown_write();
    else
      co_await c->shutdown_write();
  };
  auto w = eddy::spawn(writer(c, data));
  std::vector<std::byte> buf(100'000);
  std::uint64_t h = checksum({});
  std::size_t total = 0;
  for (;;) {
    const std::size_t n = co_await c->read_some(buf);
    if (n == 0) break;
    h = checksum(std::span<const std::byte>(buf.data(), n), h);
    total += n;
  }
  co_await w;
  EXPECT_EQ(total, expect);
  co_return h;
}

// Echoes until EOF, then half-closes: the client sees every byte, then EOF.
template <class Stream>
eddy::task<void> echo_connection(Stream s) {
  std::vector<std::byte> buf(64 * 1024);
  try {
    for (;;) {
      const std::size_t n = co_await s.read_some(buf);
      if (n == 0) break;
      co_await s.write_all(std::span<const std::byte>(buf.data(), n));
    }
    s.shutdown_write();
  } catch (const std::system_error&) {
    // peer reset: nothing to echo to
  }
  co_await s.close();
}

// Accepts `count` connections (or until cancelled), each echoed in its own task;
// waits for every connection to finish.
template <class Listener>
eddy::task<void> echo_server(Listener* l, std::size_t count) {
  eddy::task_group g;
  bool cancelled = false;
  try {
    for (std::size_t i = 0; i < count; ++i) g.spawn(echo_connection(co_await l->accept())).detach();
  } catch (const eddy::cancelled_error&) {
    cancelled = true;
    g.cancel();
  }
  co_await g.join();
  if (cancelled) throw eddy::cancelled_error{};
}

// Expects Stream{unique_fd(fd)} to refuse `fd` with std::invalid_argument whose
// message names the fd and contains `kind` ("datagram socket of AF_INET", ...).
template <class Stream>
void expect_adoption_refused(int fd, const std::string& kind) {
  try {
    Stream s{eddy::unique_fd(fd)};
    ADD_FAILURE() << "adopted fd " << fd << ": " << kind;
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("fd " + std::to_string(fd)), std::string::npos) << m;
    EXPECT_NE(m.find(kind), std::string::npos) << m;
  }
}

inline eddy::tcp_listener loopback_listener(bool ipv6 = false) {
  return eddy::tcp_listener::bind(eddy::socket_address::loopback(0, ipv6));
}

}  // namespace eddy_test
