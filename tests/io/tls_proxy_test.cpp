// samples/tcp_proxy with TLS, run as a child process on each backend and checked
// from outside with a blocking OpenSSL client: termination in front of
// samples/echo_server, re-encryption through a second proxy (--upstream-tls), and
// RELIABILITY row 20 against the proxy: a stalled handshake, plain text, garbage
// after a ClientHello and an oversize record each get one clear line on stderr
// and a closed connection, while a good client is served in between; option errors.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "program_support.hpp"
#include "support/tls_certs.hpp"

namespace {

using namespace eddy_test;

std::string tcp_proxy() { return program_path("EDDY_TCP_PROXY"); }
std::string echo_server() { return program_path("EDDY_ECHO_SERVER"); }

int g_tickets = 0;  // session tickets tls_round_trip's client was sent
int count_ticket(SSL*, SSL_SESSION*) {
  ++g_tickets;
  return 0;  // not kept
}

// A blocking TLS client (OpenSSL on a plain socket) that verifies the proxy as
// "localhost" against the test CA: sends `data`, half-closes with close_notify,
// reads everything back until the proxy's close_notify. "" and a failure on error.
// `tickets`, if given, gets the number of session tickets the proxy sent.
std::string tls_round_trip(std::uint16_t port, const std::string& data, int* tickets = nullptr) {
  client_socket c = client_socket::connect(port);
  if (!c.valid()) {
    ADD_FAILURE() << "connect: " << std::strerror(errno);
    return "";
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, tls_certs::get().ca.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, count_ticket);
  g_tickets = 0;
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, c.fd());
  SSL_set_tlsext_host_name(ssl, "localhost");
  SSL_set1_host(ssl, "localhost");
  std::string got;
  if (SSL_connect(ssl) != 1) {
    ADD_FAILURE() << "handshake with the proxy failed: " << ERR_reason_error_string(ERR_get_error());
  } else {
    std::size_t n = 0;
    if (!data.empty()) SSL_write_ex(ssl, data.data(), data.size(), &n);
    SSL_shutdown(ssl);  // close_notify: the proxy forwards it as EOF upstream
    char buf[16384];
    while (SSL_read_ex(ssl, buf, sizeof buf, &n) == 1) got.append(buf, n);
    EXPECT_EQ(SSL_get_error(ssl, 0), SSL_ERROR_ZERO_RETURN) << "no close_notify from the proxy";
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  if (tickets != nullptr) *tickets = g_tickets;
  return got;
}

// A real ClientHello made in memory.
std::string client_hello() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rb = BIO_new(BIO_s_mem());
  BIO* wb = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rb, wb);
  SSL_connect(ssl);
  char* p = nullptr;
  const long n = BIO_get_mem_data(wb, &p);
  std::string hello(p, static_cast<std::size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

// Sends `bytes` raw, then waits for the proxy to close the connection.
bool closed_by_proxy(std::uint16_t port, const std::string& bytes) {
  client_socket c = client_socket::connect(port);
  if (!bytes.empty() && ::send(c.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL) < 0) return true;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);  // client_socket has a receive timeout
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    if (n < 0) return false;  // timed out: the proxy kept it open
  }
}

class tls_proxy_test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (tcp_proxy().empty() || echo_server().empty()) GTEST_SKIP() << "EDDY_TCP_PROXY or EDDY_ECHO_SERVER unset";
    echo_.emplace(echo_server(), std::vector<std::string>{"--port", "0", "--backend", GetParam()});
    echo_port_ = echo_->wait_listening();
    ASSERT_NE(echo_port_, 0) << echo_->stderr_text();
  }
  void TearDown() override {
    for (auto* p : {&front_, &back_}) {
      if (*p) {
        (*p)->signal(SIGTERM);
        EXPECT_EQ((*p)->wait_exit(), 0) << (*p)->stderr_text();
      }
    }
    if (echo_) {
      echo_->signal(SIGTERM);
      echo_->wait_exit();
    }
  }
  std::uint16_t start(std::optional<child_process>& slot, std::uint16_t upstream, std::vector<std::string> extra) {
    const auto& c = tls_certs::get();
    std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:" + std::to_string(upstream),
                                     "--backend", GetParam(), "--tls-cert", c.server.cert, "--tls-key", c.server.key};
    args.insert(args.end(), extra.begin(), extra.end());
    slot.emplace(tcp_proxy(), args);
    const std::uint16_t port = slot->wait_listening();
    EXPECT_NE(port, 0) << slot->stderr_text();
    return port;
  }

  std::optional<child_process> echo_, front_, back_;
  std::uint16_t echo_port_ = 0;
};

}  // namespace

TEST_P(tls_proxy_test, terminates_tls_in_front_of_a_plain_echo_server) {
  const std::uint16_t port = start(front_, echo_port_, {});
  const std::string data = random_bytes(100'000, 7);
  EXPECT_TRUE(tls_round_trip(port, data) == data);
  EXPECT_EQ(tls_round_trip(port, ""), "");
}

TEST_P(tls_proxy_test, tls_tickets_sets_the_session_tickets_per_handshake) {
  int tickets = -1;
  const std::uint16_t dflt = start(front_, echo_port_, {});
  EXPECT_EQ(tls_round_trip(dflt, "a", &tickets), "a");
  EXPECT_EQ(tickets, 1);  // tls_server_options' default
  const std::uint16_t three = start(back_, echo_port_, {"--tls-tickets", "3"});
  EXPECT_EQ(tls_round_trip(three, "b", &tickets), "b");
  EXPECT_EQ(tickets, 3);
  back_->signal(SIGTERM);
  EXPECT_EQ(back_->wait_exit(), 0) << back_->stderr_text();
  const std::uint16_t none = start(back_, echo_port_, {"--tls-tickets", "0"});
  EXPECT_EQ(tls_round_trip(none, "c", &tickets), "c");
  EXPECT_EQ(tickets, 0);
}

TEST_P(tls_proxy_test, re_encrypts_through_a_second_tls_proxy) {
  const std::uint16_t back = start(back_, echo_port_, {});
  const std::uint16_t front =
      start(front_, back, {"--upstream-tls", "--upstream-ca", tls_certs::get().ca, "--upstream-sni", "localhost"});
  const std::string data = random_bytes(70'000, 9);
  EXPECT_TRUE(tls_round_trip(front, data) == data);
}

TEST_P(tls_proxy_test, bad_clients_get_a_clear_error_each_and_good_ones_are_served_meanwhile) {
  const std::uint16_t port = start(front_, echo_port_, {"--tls-handshake-timeout", "0.3"});
  // A stalled client (slowloris) stays open while others come and go ...
  client_socket stalled = client_socket::connect(port);
  EXPECT_TRUE(closed_by_proxy(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(closed_by_proxy(port, client_hello() + std::string(500, '\x15')));
  EXPECT_TRUE(closed_by_proxy(port, std::string("\x16\x03\x01\xff\xff", 5) + std::string(2000, 'a')));
  EXPECT_EQ(tls_round_trip(port, "still serving"), "still serving");
  // ... until its handshake timeout.
  char b;
  EXPECT_EQ(::recv(stalled.fd(), &b, 1, 0), 0);
  front_->signal(SIGTERM);
  EXPECT_EQ(front_->wait_exit(), 0);
  const std::string log = front_->stderr_text();
  front_.reset();
  EXPECT_NE(log.find("timed out after 300 ms"), std::string::npos) << log;
  EXPECT_NE(log.find("http request"), std::string::npos) << log;
  EXPECT_TRUE(log.find("length too long") != std::string::npos || log.find("overflow") != std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 5) << log;  // 4 failures + the SIGTERM line
}

TEST_P(tls_proxy_test, tls_options_are_checked) {
  const auto& c = tls_certs::get();
  auto [rc1, err1] = run_to_exit(tcp_proxy(), {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--tls-cert", c.server.cert});
  EXPECT_EQ(rc1, 2);
  EXPECT_NE(err1.find("--tls-cert and --tls-key go together"), std::string::npos) << err1;
  auto [rc2, err2] = run_to_exit(tcp_proxy(), {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--tls-cert",
                                              c.server.cert, "--tls-key", c.server.key, "--splice"});
  EXPECT_EQ(rc2, 2);
  EXPECT_NE(err2.find("not with TLS"), std::string::npos) << err2;
  auto [rc3, err3] = run_to_exit(tcp_proxy(), {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--tls-cert",
                                              c.dir + "/nope.pem", "--tls-key", c.server.key});
  EXPECT_EQ(rc3, 1);
  EXPECT_NE(err3.find("nope.pem"), std::string::npos) << err3;
  auto [rc4, err4] = run_to_exit(tcp_proxy(), {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--upstream-sni", "x"});
  EXPECT_EQ(rc4, 2);
  EXPECT_NE(err4.find("need --upstream-tls"), std::string::npos) << err4;
  auto [rc5, err5] = run_to_exit(tcp_proxy(), {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--tls-cert",
                                              c.server.cert, "--tls-key", c.server.key, "--tls-tickets", "17"});
  EXPECT_EQ(rc5, 2);
  EXPECT_NE(err5.find("0..16"), std::string::npos) << err5;
  auto [rc6, err6] = run_to_exit(tcp_proxy(), {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--tls-tickets", "2"});
  EXPECT_EQ(rc6, 2);
  EXPECT_NE(err6.find("--tls-tickets needs --tls-cert"), std::string::npos) << err6;
}

INSTANTIATE_TEST_SUITE_P(backends, tls_proxy_test, ::testing::ValuesIn(program_backends()),
                         [](const auto& info) { return info.param; });
