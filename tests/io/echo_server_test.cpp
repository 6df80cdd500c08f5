// samples/echo_server, run as a child process on each backend (EDDY_ECHO_SERVER
// names the binary), checked from outside with plain sockets: byte-exact echoes
// with the half-close passed back, signals end it with status 0, bad options end
// it with status 2 and a reason.
#include <thread>

#include <gtest/gtest.h>

#include "program_support.hpp"

namespace {

using namespace eddy_test;

std::string echo_server() {
  return program_path("EDDY_ECHO_SERVER");
}

class echo_server_test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (echo_server().empty()) GTEST_SKIP() << "EDDY_ECHO_SERVER is not set";
    server_.emplace(echo_server(),
                    std::vector<std::string>{"--port", "0", "--backend", GetParam()});
    port_ = server_->wait_listening();
    ASSERT_NE(port_, 0) << server_->stderr_text();
  }
  void TearDown() override {
    if (!server_) return;
    server_->signal(SIGTERM);
    EXPECT_EQ(server_->wait_exit(), 0) << server_->stderr_text();
  }

  std::optional<child_process> server_;
  std::uint16_t port_ = 0;
};

TEST_P(echo_server_test, echoes_every_payload_byte_exact_then_eof_from_0_bytes_to_16_mib) {
  std::uint32_t seed = 1;
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{1000}, std::size_t{65536},
                           std::size_t{(1 << 20) + 7}, std::size_t{16 << 20}}) {
    client_socket c = client_socket::connect(port_);
    ASSERT_TRUE(c.valid()) << std::strerror(errno);
    const std::string data = random_bytes(size, seed++);
    bool eof = false;
    const std::string got = echo_round_trip(c, data, &eof);
    EXPECT_EQ(got.size(), data.size()) << "payload " << size;
    EXPECT_TRUE(got == data) << "payload " << size << " came back different";
    EXPECT_TRUE(eof) << "no EOF after the echo of " << size << " bytes";
  }
}

// --gather 8: chunks that queued while a send waited go back in one gathered send;
// every byte still comes back in order, and the half-close after it.
TEST_P(echo_server_test, gathered_sends_echo_every_byte_in_order) {
  child_process g(echo_server(), {"--port", "0", "--backend", GetParam(), "--gather", "8"});
  const std::uint16_t port = g.wait_listening();
  ASSERT_NE(port, 0) << g.stderr_text();
  std::uint32_t seed = 50;
  for (std::size_t size : {std::size_t{1}, std::size_t{70000}, std::size_t{16 << 20}}) {
    client_socket c = client_socket::connect(port);
    ASSERT_TRUE(c.valid()) << std::strerror(errno);
    const std::string data = random_bytes(size, seed++);
    bool eof = false;
    const std::string got = echo_round_trip(c, data, &eof);
    EXPECT_TRUE(got == data) << "payload " << size << " came back different (" << got.size() << " bytes)";
    EXPECT_TRUE(eof) << "no EOF after the echo of " << size << " bytes";
  }
  g.signal(SIGTERM);
  EXPECT_EQ(g.wait_exit(), 0) << g.stderr_text();
}

TEST_P(echo_server_test, serves_many_connections_at_once_each_with_its_own_bytes) {
  constexpr int n = 100;
  std::vector<client_socket> conns;
  for (int i = 0; i < n; ++i) {
    conns.push_back(client_socket::connect(port_));
    ASSERT_TRUE(conns.back().valid()) << std::strerror(errno);
  }
  for (int i = 0; i < n; ++i) ASSERT_TRUE(conns[i].send_all(random_bytes(1024, 100 + i)));
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(conns[i].recv_exact(1024), random_bytes(1024, 100 + i)) << "connection " << i;
}

TEST_P(echo_server_test, keeps_reading_after_the_client_half_closes_until_every_byte_is_back) {
  client_socket c = client_socket::connect(port_);
  ASSERT_TRUE(c.valid());
  const std::string data = random_bytes(300'000, 7);
  ASSERT_TRUE(c.send_all(data.substr(0, 1000)));
  EXPECT_EQ(c.recv_exact(1000), data.substr(0, 1000));
  // The rest goes in one go, followed by FIN: the echo of all of it must still come.
  bool eof = false;
  EXPECT_TRUE(echo_round_trip(c, data.substr(1000), &eof) == data.substr(1000));
  EXPECT_TRUE(eof);
}

TEST_P(echo_server_test,
       a_client_that_never_reads_stops_the_server_reading_instead_of_growing_its_memory) {
  client_socket c = client_socket::connect(port_);
  ASSERT_TRUE(c.valid());
  const long rss_before = server_->rss_kib();
  // Send without reading until the send side stays full: the echoes fill our
  // receive buffer, the server's sends block, and it must then stop reading.
  const std::string block(256 * 1024, 'z');
  ::fcntl(c.fd(), F_SETFL, ::fcntl(c.fd(), F_GETFL) | O_NONBLOCK);
  std::size_t sent = 0;
  constexpr std::size_t give_up = 256u << 20;
  while (sent < give_up) {
    const ssize_t n = ::send(c.fd(), block.data(), block.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    ASSERT_EQ(errno, EAGAIN) << std::strerror(errno);
    pollfd p{c.fd(), POLLOUT, 0};
    if (::poll(&p, 1, 500) == 0) break;  // stalled: the server has stopped reading
  }
  const long rss_after = server_->rss_kib();
  EXPECT_LT(sent, give_up) << "the server kept reading from a client that never reads";
  // What is in flight sits in kernel socket buffers, not in the server.
  EXPECT_LT(rss_after - rss_before, 16 * 1024)
      << "RSS " << rss_before << " -> " << rss_after << " KiB after " << sent << " bytes";
}

TEST_P(echo_server_test, sigint_with_open_connections_closes_them_and_exits_0) {
  client_socket a = client_socket::connect(port_);
  client_socket b = client_socket::connect(port_);
  ASSERT_TRUE(a.send_all("ping"));
  ASSERT_EQ(a.recv_exact(4), "ping");  // accepted and served
  server_->signal(SIGINT);
  EXPECT_TRUE(a.closed_by_peer());
  EXPECT_TRUE(b.closed_by_peer());
  EXPECT_EQ(server_->wait_exit(), 0) << server_->stderr_text();
  server_.reset();
  // The listener is gone too.
  EXPECT_FALSE(client_socket::connect(port_).valid());
}

// Operability (docs/operability.md): --stats N logs a summary line every N
// seconds, SIGUSR2 logs a task dump naming each task's spawn site and what it
// awaits, SIGTERM drains (--grace) and says how it ended; every line is stamped.
TEST_P(echo_server_test, stats_lines_a_task_dump_on_sigusr2_and_a_graceful_stop) {
  server_->signal(SIGTERM);
  ASSERT_EQ(server_->wait_exit(), 0);
  server_.emplace(echo_server(), std::vector<std::string>{"--port", "0", "--backend", GetParam(), "--stats",
                                                          "1", "--grace", "0.2"});
  port_ = server_->wait_listening();
  ASSERT_NE(port_, 0) << server_->stderr_text();
  client_socket c = client_socket::connect(port_);
  ASSERT_TRUE(c.send_all("ping"));
  ASSERT_EQ(c.recv_exact(4), "ping");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // at least one stats line
  server_->signal(SIGUSR2);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server_->signal(SIGTERM);
  EXPECT_TRUE(c.closed_by_peer());  // after the grace period
  ASSERT_EQ(server_->wait_exit(), 0);
  const std::string err = server_->stderr_text();
  for (const char* want : {"echo_server: stats: conns 1 accepted 1 | busy ", "SIGUSR2: task dump follows",
                           "live task(s)", "spawned at echo_server.cpp:", "accept on fd ",
                           "TERM, stopped accepting; 1 connection(s) open",
                           "0 connection(s) finished, 1 closed at the deadline"})
    EXPECT_NE(err.find(want), std::string::npos) << "no '" << want << "' in:\n" << err;
  EXPECT_EQ(err.rfind("20", 0), 0u) << "log lines start with a timestamp:\n" << err;
  server_.reset();
}

INSTANTIATE_TEST_SUITE_P(backends, echo_server_test, ::testing::ValuesIn(program_backends()),
                         [](const auto& info) { return info.param; });

TEST(echo_server_options, version_and_short_help_exit_0) {
  if (echo_server().empty()) GTEST_SKIP() << "EDDY_ECHO_SERVER is not set";
  for (const char* arg : {"--version", "-h"}) {
    child_process p(echo_server(), {arg});
    EXPECT_EQ(p.wait_exit(), 0) << arg;
  }
}

TEST(echo_server_options, bad_values_exit_2_with_a_reason) {
  if (echo_server().empty()) GTEST_SKIP() << "EDDY_ECHO_SERVER is not set";
  const std::vector<std::vector<std::string>> cases = {
      {"--port", "65536"},     {"--port", "-1"},        {"--port", "http"},      {"--port"},
      {"--host", "not an ip"}, {"--host", "300.1.1.1"}, {"--backend", "kqueue"}, {"--threads", "1025"},
      {"--threads", "-1"},     {"--threads", "x"},      {"--verbose"},           {"stray"},
      {"--help=yes"},          {"--work-us", "x"},      {"--work-us", "1000001"}, {"--work-us", "-5"},
      {"--recv-limit", "1000"}, {"--uring-buffers", "3"}, {"--uring-buffers", "65536"},
      {"--uring-buffer-size", "5000"}, {"--send-zerocopy-min", "100"}, {"--send-zerocopy-min", "x"},
      {"--gather", "0"},        {"--gather", "9"},
  };
  for (const auto& args : cases) {
    const auto [rc, err] = run_to_exit(echo_server(), args);
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    EXPECT_EQ(rc, 2) << shown;
    EXPECT_NE(err.find("echo_server: "), std::string::npos) << shown << ": " << err;
  }
  for (const char* opt : {"--threads", "--uring-buffers", "--send-zerocopy-min"}) {
    const auto [rc, err] = run_to_exit(echo_server(), {opt, opt == std::string("--threads") ? "1025" : "3"});
    EXPECT_NE(err.find(opt), std::string::npos) << err;
  }
}

TEST(echo_server_options, help_prints_usage_and_exits_0) {
  if (echo_server().empty()) GTEST_SKIP() << "EDDY_ECHO_SERVER is not set";
  child_process c(echo_server(), {"--help"});
  EXPECT_EQ(c.wait_exit(), 0);
}

TEST(echo_server_options, an_address_in_use_exits_1_with_a_reason) {
  if (echo_server().empty()) GTEST_SKIP() << "EDDY_ECHO_SERVER is not set";
  plain_listener taken;
  const auto [rc, err] = run_to_exit(echo_server(), {"--port", std::to_string(taken.port())});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("in use"), std::string::npos) << err;
}

}  // namespace
