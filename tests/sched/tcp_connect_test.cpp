// eddy::tcp_connect on every backend: a name (localhost, from /etc/hosts: no network
// needed) and numeric IPv4/IPv6 hosts reach an echo server; a closed port gives
// ECONNREFUSED after every address was tried; bad arguments fail at once.
#include <netinet/in.h>
#include <sys/socket.h>

#include <eddy/sched/tcp_connect.hpp>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class tcp_connect_test : public eddy_test::loop_test {};

// Connects to `host` on l's port, sends a payload, half-closes and checks the echo.
task<bool> echoes_through(std::string host, eddy::tcp_listener* l) {
  auto srv = eddy::spawn(eddy_test::echo_server(l, 1));
  auto c = co_await eddy::tcp_connect(std::move(host), l->local_address().port());
  const auto data = eddy_test::payload(5000, 5);
  co_await c.write_all(data);
  c.shutdown_write();
  std::vector<std::byte> got, buf(4096);
  for (;;) {
    const std::size_t n = co_await c.read_some(buf);
    if (n == 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  co_await c.close();
  co_await srv;
  co_return got == data;
}

}  // namespace

TEST_P(tcp_connect_test, a_host_name_is_resolved_and_connected) {
  auto f = []() -> task<bool> {
    auto l = eddy_test::loopback_listener();
    const bool ok = co_await echoes_through("localhost", &l);
    co_await l.close();
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(tcp_connect_test, numeric_ipv4_and_ipv6_hosts_connect_without_a_lookup) {
  auto f = []() -> task<bool> {
    auto l4 = eddy_test::loopback_listener();
    bool ok = co_await echoes_through("127.0.0.1", &l4);
    co_await l4.close();
    if (eddy::socket_address::loopback(0, true).is_ipv6()) {
      auto l6 = eddy_test::loopback_listener(true);
      ok = co_await echoes_through("::1", &l6) && ok;
      co_await l6.close();
    }
    co_return ok;
  };
  EXPECT_TRUE(run(f()));
}

TEST_P(tcp_connect_test, a_closed_port_is_refused_after_every_address_was_tried) {
  auto f = []() -> task<int> {
    auto l = eddy_test::loopback_listener();
    const std::uint16_t port = l.local_address().port();
    co_await l.close();
    try {
      (void)co_await eddy::tcp_connect("localhost", port, {.timeout = 5s});
    } catch (const std::system_error& e) {
      co_return e.code().value();
    }
    co_return 0;
  };
  EXPECT_EQ(run(f()), ECONNREFUSED);
}

TEST_P(tcp_connect_test, bad_arguments_fail_when_awaited) {
  auto f = []() -> task<int> {
    int failures = 0;
    try {
      (void)co_await eddy::tcp_connect("", 80);
    } catch (const eddy::address_error&) {
      ++failures;
    }
    try {
      (void)co_await eddy::tcp_connect("localhost", 80, {.timeout = 0ms});
    } catch (const std::invalid_argument&) {
      ++failures;
    }
    try {
      (void)co_await eddy::tcp_connect(std::string(eddy::max_host_length + 1, 'a'), 80);
    } catch (const std::invalid_argument&) {
      ++failures;
    }
    co_return failures;
  };
  EXPECT_EQ(run(f()), 3);
}

EDDY_BACKEND_TEST_SUITE(tcp_connect_test);
