// UDP on every backend: send_to/recv_from with sender addresses, truncation,
// connected sockets, IPv6, and cancel-safe receives.
#include <array>
#include <string>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {
class udp_test : public eddy_test::loop_test {};

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
}  // namespace

TEST_P(udp_test, send_to_and_recv_from_carry_datagrams_and_senders) {
  auto f = []() -> task<bool> {
    auto a = eddy::udp_socket::bind(eddy::socket_address::loopback(0));
    auto b = eddy::udp_socket::bind(eddy::socket_address::loopback(0));
    bool ok = true;
    for (int i = 0; i < 100; ++i) {
      const std::string msg = "datagram " + std::to_string(i);
      ok = ok && co_await a.send_to(bytes(msg), b.local_address()) == msg.size();
      std::array<std::byte, 1500> buf;
      const eddy::datagram d = co_await b.recv_from(buf);
      ok = ok && d.size == msg.size() && !d.truncated && d.from == a.local_address();
      ok = ok && std::string(reinterpret_cast<const char*>(buf.data()), d.size) == msg;
    }
    const std::string empty;
    (void)co_await a.send_to(bytes(empty), b.local_address());
    std::array<std::byte, 16> buf;
    ok = ok && (co_await b.recv_from(buf)).size == 0;  // an empty datagram is not EOF
    co_await a.close();
    co_await b.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(udp_test, a_datagram_longer_than_the_buffer_is_truncated_and_says_so) {
  auto f = []() -> task<bool> {
    auto a = eddy::udp_socket::open();
    auto b = eddy::udp_socket::bind(eddy::socket_address::loopback(0));
    const std::string big(1000, 'x');
    (void)co_await a.send_to(bytes(big), b.local_address());
    (void)co_await a.send_to(bytes("next"), b.local_address());
    std::array<std::byte, 100> buf;
    const auto d1 = co_await b.recv_from(buf);
    const auto d2 = co_await b.recv_from(buf);
    co_await a.close();
    co_await b.close();
    co_return d1.truncated&& d1.size == 100 && !d2.truncated && d2.size == 4;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(udp_test, connected_sockets_use_send_and_recv_and_ipv6_works) {
  auto f = []() -> task<bool> {
    auto a = eddy::udp_socket::bind(eddy::socket_address::loopback(0, true));
    auto b = eddy::udp_socket::bind(eddy::socket_address::loopback(0, true));
    a.connect(b.local_address());
    b.connect(a.local_address());
    (void)co_await a.send(bytes("ping"));
    std::array<std::byte, 16> buf;
    const std::size_t n = co_await b.recv(buf);
    (void)co_await b.send(bytes("pong!"));
    const std::size_t m = co_await a.recv(buf);
    const bool ok = n == 4 && m == 5 && a.peer_address() == b.local_address();
    co_await a.close();
    co_await b.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(udp_test, a_cancelled_receive_consumes_no_datagram) {
  auto f = []() -> task<bool> {
    auto a = eddy::udp_socket::open();
    auto b = eddy::udp_socket::bind(eddy::socket_address::loopback(0));
    auto rx = [](eddy::udp_socket* s) -> task<std::size_t> {
      std::array<std::byte, 64> buf;
      co_return (co_await s->recv_from(buf)).size;
    };
    auto h = eddy::spawn(rx(&b));
    co_await eddy::sleep_for(1ms);
    h.cancel();
    bool cancelled = false;
    try {
      (void)co_await h;
    } catch (const eddy::cancelled_error&) {
      cancelled = true;
    }
    (void)co_await a.send_to(bytes("kept"), b.local_address());
    std::array<std::byte, 64> buf;
    const auto d = co_await b.recv_from(buf);
    co_await a.close();
    co_await b.close();
    co_return cancelled&& d.size == 4;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(udp_test, bad_arguments_are_clear_errors) {
  auto f = []() -> task<int> {
    int n = 0;
    try {
      (void)eddy::udp_socket::bind(eddy::socket_address::unix_abstract("u"));
    } catch (const std::invalid_argument&) {
      ++n;
    }
    try {
      (void)eddy::udp_socket::open(AF_UNIX);
    } catch (const std::invalid_argument&) {
      ++n;
    }
    co_return n;
  };
  EXPECT_EQ(run(f()), 2);
}

EDDY_BACKEND_TEST_SUITE(udp_test);
