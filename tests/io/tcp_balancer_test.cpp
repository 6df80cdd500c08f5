// tcp_balancer: one loop accepts, each connection goes to the loop with the fewest
// open connections (not round-robin), and the count follows connections closing.
// Two loops of a loop_group on every backend; the client side is plain sockets.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include <eddy/eddy.hpp>

#include "program_support.hpp"
#include "support/loop_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using eddy_test::client_socket;

// Tells the client which loop serves it, then holds the connection until EOF.
eddy::task<void> say_where(eddy::tcp_balancer::connection c) {
  const char idx = static_cast<char>('0' + eddy::loop_group::current_index());
  co_await c.stream.write_all(std::as_bytes(std::span(&idx, 1)));
  std::byte buf[16];
  while (co_await c.stream.read_some(buf) > 0) {
  }
  co_await c.stream.close();
}

eddy::task<void> serve_inbox(eddy::tcp_balancer* bal, std::size_t i) {
  eddy::task_group conns;
  try {
    while (auto c = co_await bal->next(i)) conns.spawn(say_where(std::move(*c))).detach();
  } catch (const eddy::cancelled_error&) {
  }
  conns.cancel();
  co_await conns.join();
}

eddy::task<void> accept_side(eddy::tcp_balancer* bal, std::atomic<int>* port) {
  eddy::tcp_listener l = eddy::tcp_listener::bind(eddy::socket_address::parse("127.0.0.1:0"));
  port->store(l.local_address().port());
  auto acceptor = eddy::spawn(bal->accept_from(l));
  co_await serve_inbox(bal, 0);  // until cancelled
  acceptor.cancel();
  try {
    co_await acceptor;
  } catch (const eddy::cancelled_error&) {
  }
  co_await l.close();
}

class tcp_balancer_test : public ::testing::TestWithParam<eddy::backend_kind> {};

TEST_P(tcp_balancer_test, each_connection_goes_to_the_least_loaded_loop) {
  eddy::loop_group_options o;
  o.loops = 2;
  o.loop.backend = GetParam();
  o.sigint_cancels = false;
  eddy::loop_group g(o);
  eddy::tcp_balancer bal(2);
  std::atomic<int> port{0};
  std::thread server([&] {
    g.run([&](std::size_t i) { return i == 0 ? accept_side(&bal, &port) : serve_inbox(&bal, i); });
  });
  while (port.load() == 0) std::this_thread::sleep_for(1ms);
  const auto p = static_cast<std::uint16_t>(port.load());
  int opened = 0;
  auto open = [&](char want) {
    client_socket c = client_socket::connect(p);
    EXPECT_TRUE(c.valid());
    EXPECT_EQ(c.recv_exact(1), std::string(1, want)) << "connection " << opened << " (client fd " << c.fd() << ")";
    ++opened;
    return c;
  };
  auto wait_open = [&](std::size_t i, std::size_t n) {
    for (int k = 0; k < 5000 && bal.open(i) != n; ++k) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(bal.open(i), n) << "loop " << i;
  };
  {
    client_socket a = open('0');  // (0, 0): the lowest index
    client_socket b = open('1');  // (1, 0)
    client_socket c = open('0');  // (1, 1)
    client_socket d = open('1');  // (2, 1)
    a = client_socket();           // closes: loop 0 drops to 1, then to 0 with c
    c = client_socket();
    wait_open(0, 0);
    wait_open(1, 2);
    client_socket e = open('0');  // (0, 2)
    client_socket f = open('0');  // (1, 2): round-robin would have said 1
    client_socket h = open('0');  // (2, 2): a tie goes to the lowest index
    client_socket k = open('1');  // (3, 2)
  }
  wait_open(0, 0);
  wait_open(1, 0);
  g.cancel();
  server.join();
  EXPECT_THROW(eddy::tcp_balancer(0), std::invalid_argument);
  EXPECT_THROW(eddy::tcp_balancer(2, 0), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(backends, tcp_balancer_test, ::testing::ValuesIn(eddy_test::backends()),
                         eddy_test::backend_param_name);

}  // namespace
