// samples/echo_server --threads 2, run as a child process on each backend: two loops,
// each with its own SO_REUSEPORT listener. The kernel spreads connections over both
// loops; SIGTERM stops accepting on both and lets open connections finish within
// --grace (each loop drains its own eddy::graceful_shutdown); SIGINT with
// connections open on both closes them at the grace deadline and exits 0;
// --work-us still echoes byte-exact.
#include <regex>

#include <gtest/gtest.h>

#include "program_support.hpp"

namespace {

using namespace eddy_test;

std::string echo_server() { return program_path("EDDY_ECHO_SERVER"); }

class echo_server_threads_test : public ::testing::TestWithParam<std::string> {
 protected:
  void start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--port", "0", "--backend", GetParam(), "--threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_.emplace(echo_server(), args);
    port_ = server_->wait_listening();
    ASSERT_NE(port_, 0) << err();
  }
  void SetUp() override {
    if (echo_server().empty()) GTEST_SKIP() << "EDDY_ECHO_SERVER is not set";
  }
  // The child's stderr so far (reading its pipe consumes it: keep what was read).
  const std::string& err() {
    err_ += server_->stderr_text();
    return err_;
  }
  // "connections accepted per loop: loop 0: N, loop 1: M"
  std::vector<long> spread() {
    const std::string err = this->err();
    std::vector<long> out;
    const std::regex one("loop (\\d+): (\\d+)");
    const auto at = err.find("accepted per loop:");
    if (at == std::string::npos) return out;
    const std::string line = err.substr(at, err.find('\n', at) - at);
    for (auto it = std::sregex_iterator(line.begin(), line.end(), one); it != std::sregex_iterator(); ++it)
      out.push_back(std::stol((*it)[2]));
    return out;
  }

  // Each loop's "loop I: F connection(s) finished, C closed": the sums over loops.
  std::pair<long, long> drained() {
    const std::string err = this->err();
    const std::regex line("loop \\d+: (\\d+) connection\\(s\\) finished, (\\d+) closed");
    long finished = 0, closed = 0, loops = 0;
    for (auto it = std::sregex_iterator(err.begin(), err.end(), line); it != std::sregex_iterator(); ++it) {
      finished += std::stol((*it)[1]);
      closed += std::stol((*it)[2]);
      ++loops;
    }
    if (loops != 2) return {-1, -1};
    return {finished, closed};
  }

  // n connections, each served once (ping echoed), so both loops hold some: the
  // chance that the kernel's hash puts 40 on one loop is 2^-39.
  std::vector<client_socket> served_connections(int n) {
    std::vector<client_socket> conns;
    for (int i = 0; i < n; ++i) {
      conns.push_back(client_socket::connect(port_));
      EXPECT_TRUE(conns.back().valid());
      EXPECT_TRUE(conns.back().send_all("ping"));
      EXPECT_EQ(conns.back().recv_exact(4), "ping");
    }
    return conns;
  }

  std::optional<child_process> server_;
  std::string err_;
  std::uint16_t port_ = 0;
};

TEST_P(echo_server_threads_test, reuseport_spreads_1000_connections_over_both_loops) {
  start();
  constexpr int n = 1000;
  for (int batch = 0; batch < n / 100; ++batch) {
    std::vector<client_socket> conns;
    for (int i = 0; i < 100; ++i) {
      conns.push_back(client_socket::connect(port_));
      ASSERT_TRUE(conns.back().valid()) << std::strerror(errno);
    }
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(conns[i].send_all("x" + std::to_string(i)));
    for (int i = 0; i < 100; ++i)
      ASSERT_EQ(conns[i].recv_exact(1 + std::to_string(i).size()), "x" + std::to_string(i))
          << "batch " << batch << "; server stderr: " << err();
  }
  server_->signal(SIGTERM);
  ASSERT_EQ(server_->wait_exit(), 0) << err();
  const std::vector<long> s = spread();
  ASSERT_EQ(s.size(), 2u) << err();
  EXPECT_EQ(s[0] + s[1], n);
  EXPECT_GT(s[0], 0) << "loop 0 got no connection";
  EXPECT_GT(s[1], 0) << "loop 1 got no connection";
  server_.reset();
}

TEST_P(echo_server_threads_test, sigterm_stops_accepting_and_lets_connections_on_both_loops_finish) {
  start({"--grace", "60"});
  std::vector<client_socket> conns = served_connections(40);
  ASSERT_FALSE(HasFailure()) << err();
  server_->signal(SIGTERM);
  EXPECT_TRUE(eventually([&] { return !client_socket::connect(port_).valid(); }))
      << "still accepting after SIGTERM";
  // Within the grace period every open connection still echoes, on both loops.
  for (auto& c : conns) {
    ASSERT_TRUE(c.send_all("pong"));
    ASSERT_EQ(c.recv_exact(4), "pong") << err();
  }
  for (auto& c : conns) c.shutdown_write();
  for (auto& c : conns) EXPECT_TRUE(c.closed_by_peer());
  // Long before the 60 s grace: it leaves once the last connection has ended.
  EXPECT_EQ(server_->wait_exit(std::chrono::seconds(20)), 0) << err();
  const auto [finished, closed] = drained();
  EXPECT_GE(finished, 40) << err();  // and the probes above that got in before the close
  EXPECT_EQ(closed, 0) << err();
  server_.reset();
}

TEST_P(echo_server_threads_test, sigint_with_connections_open_on_both_loops_closes_them_and_exits_0) {
  start({"--grace", "0.2"});
  std::vector<client_socket> conns = served_connections(40);
  ASSERT_FALSE(HasFailure()) << err();
  server_->signal(SIGINT);
  for (auto& c : conns) {
    char ch;
    const ssize_t r = c.recv_some(&ch, 1);
    EXPECT_TRUE(r == 0 || r == -ECONNRESET) << "recv: " << r;  // closed by the server
  }
  EXPECT_EQ(server_->wait_exit(), 0) << err();
  EXPECT_EQ(drained(), std::make_pair(0L, 40L)) << err();  // at the deadline
  const std::vector<long> s = spread();
  ASSERT_EQ(s.size(), 2u) << err();
  EXPECT_GT(s[0], 0);
  EXPECT_GT(s[1], 0);
  server_.reset();
  EXPECT_FALSE(client_socket::connect(port_).valid());  // both listeners are gone
}

// Two signals at once (SIGINT, then SIGTERM before loop 0 has read the first), as
// an impatient operator or a supervisor's stop-then-terminate sends them: the second
// closes what is open on both loops now. It used to be lost on the loop whose
// accept loop was winding down (the join forwarded it to the finished acceptor),
// and that loop waited out the whole --grace.
TEST_P(echo_server_threads_test, two_signals_at_once_close_connections_on_both_loops_now) {
  start({"--grace", "60"});
  std::vector<client_socket> conns = served_connections(40);
  ASSERT_FALSE(HasFailure()) << err();
  server_->signal(SIGINT);
  server_->signal(SIGTERM);
  // Far inside the 60 s grace: the second signal closed everything at once.
  EXPECT_EQ(server_->wait_exit(std::chrono::seconds(15)), 0) << err();
  for (auto& c : conns) {
    char ch;
    const ssize_t r = c.recv_some(&ch, 1);
    EXPECT_TRUE(r == 0 || r == -ECONNRESET) << "recv: " << r;
  }
  server_.reset();
}

TEST_P(echo_server_threads_test, work_us_still_echoes_byte_exact) {
  start({"--work-us", "50"});
  client_socket c = client_socket::connect(port_);
  ASSERT_TRUE(c.valid());
  const std::string data = random_bytes(200'000, 3);
  bool eof = false;
  EXPECT_TRUE(echo_round_trip(c, data, &eof) == data);
  EXPECT_TRUE(eof);
  server_->signal(SIGTERM);
  EXPECT_EQ(server_->wait_exit(), 0) << err();
  server_.reset();
}

INSTANTIATE_TEST_SUITE_P(backends, echo_server_threads_test, ::testing::ValuesIn(program_backends()),
                         [](const auto& info) { return info.param; });

}  // namespace
