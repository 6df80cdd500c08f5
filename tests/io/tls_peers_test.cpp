// tls_stream against independent TLS implementations, on every backend: eddy's
// client against `openssl s_server` (and a resumed second session) and Python's
// ssl module as a server; eddy's server against `openssl s_client` and Python's
// ssl as a client. Then the bad inputs of RELIABILITY row 20 against eddy's server:
// plain text on the TLS port, garbage after a real ClientHello, a record larger
// than the maximum, a renegotiation request; each gets a clear error and the
// server goes on serving the next client.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "io/tls_support.hpp"
#include "support/loop_fixture.hpp"

extern char** environ;

using namespace std::chrono_literals;
using eddy::task;
using eddy::tls_errc;

namespace {

class tls_peers_test : public eddy_test::loop_test {};

// A child process with its stdin a pipe we write, and its stdout+stderr a file
// read after it exits (so no pipe can fill up while the loop runs).
class peer_process {
 public:
  explicit peer_process(const std::vector<std::string>& args) {
    int in[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    char tmpl[] = "/tmp/eddy-tls-peer-XXXXXX";
    const int out = ::mkstemp(tmpl);
    out_path_ = tmpl;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, out, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out);
    stdin_ = in[1];
    if (rc != 0) throw std::runtime_error("cannot run " + args[0]);
  }
  ~peer_process() {
    close_stdin();
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
    ::unlink(out_path_.c_str());
  }
  void write_stdin(const std::string& s) { (void)!::write(stdin_, s.data(), s.size()); }
  void close_stdin() {
    if (stdin_ >= 0) ::close(std::exchange(stdin_, -1));
  }
  // Waits (blocking: call it outside the loop) for the exit status, -1 on timeout.
  int wait_exit(std::chrono::milliseconds limit = 30s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(5ms);
    }
    return -1;
  }
  std::string output() const {
    std::ifstream f(out_path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  std::string out_path_;
};

// A port free now (bound and released with plain sockets: no loop runs yet).
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Waits (inside the loop) until something accepts on `port`.
task<void> wait_listening(std::uint16_t port) {
  for (int i = 0; i < 600; ++i) {
    try {
      auto s = co_await eddy::tcp_stream::connect(eddy::socket_address::loopback(port));
      co_await s.close();
      co_return;
    } catch (const std::system_error&) {
    }
    co_await eddy::sleep_for(50ms);
  }
  throw std::runtime_error("peer never listened on " + std::to_string(port));
}

const char* python_exe = "/usr/bin/python3";

// Serves one TLS client on `l` with `ctx`: answers "pong: <line>" and closes
// with close_notify. Returns what happened (the error's text on failure).
task<std::string> serve_one(eddy::tcp_listener* l, eddy::tls_context ctx) {
  try {
    auto t = co_await eddy::tls_stream::accept(co_await l->accept(), ctx, {.handshake_timeout = 5s});
    std::string line = co_await t.read_line();
    co_await t.write_all("pong: " + line);
    co_await t.close();
    co_return "ok " + line;
  } catch (const std::system_error& e) {
    co_return std::string("error: ") + e.what();
  }
}

}  // namespace

TEST_P(tls_peers_test, eddy_client_talks_to_openssl_s_server_and_resumes_its_session) {
  const std::uint16_t port = free_port();
  const auto& c = eddy_test::certs();
  // Three accepts: the readiness probe (no TLS), then two sessions.
  peer_process srv({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                    c.server.cert, "-key", c.server.key, "-rev", "-naccept", "3"});
  auto f = [](std::uint16_t port) -> task<std::vector<std::string>> {
    co_await wait_listening(port);
    const auto ctx = eddy_test::client_context();
    std::vector<std::string> got;
    for (int i = 0; i < 2; ++i) {
      auto t = co_await eddy_test::tls_connect(eddy::socket_address::loopback(port), ctx);
      co_await t.write_all("hello\n");
      std::string line = co_await t.read_line();
      got.push_back(line + " " + t.protocol_version() + (t.session_reused() ? " resumed" : " full"));
      co_await t.close();
    }
    co_return got;
  };
  const std::vector<std::string> got = run(f(port));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "olleh\n TLSv1.3 full") << srv.output();
  EXPECT_EQ(got[1], "olleh\n TLSv1.3 resumed") << srv.output();
}

TEST_P(tls_peers_test, openssl_s_client_talks_to_eddy_server) {
  auto f = [](peer_process** out) -> task<std::string> {
    auto l = eddy_test::loopback_listener();
    const auto& c = eddy_test::certs();
    auto* p = new peer_process({"openssl", "s_client", "-connect",
                                "127.0.0.1:" + std::to_string(l.local_address().port()), "-servername",
                                "localhost", "-CAfile", c.ca, "-verify_return_error", "-quiet"});
    *out = p;
    p->write_stdin("ping\n");
    std::string r = co_await serve_one(&l, eddy_test::default_server());
    co_return r;
  };
  peer_process* p = nullptr;
  const std::string r = run(f(&p));
  std::unique_ptr<peer_process> owner(p);
  EXPECT_EQ(r, "ok ping\n");
  // s_client exits when the server's close_notify arrives.
  EXPECT_EQ(p->wait_exit(), 0) << p->output();
  EXPECT_NE(p->output().find("pong: ping"), std::string::npos) << p->output();
}

TEST_P(tls_peers_test, python_ssl_client_and_server_talk_to_eddy_both_ways) {
  const auto& c = eddy_test::certs();
  // Python as the client of eddy's server.
  auto serve = [](peer_process** out) -> task<std::string> {
    auto l = eddy_test::loopback_listener();
    const std::string script =
        "import socket, ssl, sys\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
        "s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))), server_hostname='localhost')\n"
        "s.sendall(b'from python\\n')\n"
        "data = b''\n"
        "while True:\n"
        "    d = s.recv(1024)\n"
        "    if not d: break\n"
        "    data += d\n"
        "print(data.decode().strip(), s.version())\n";
    *out = new peer_process({python_exe, "-c", script, std::to_string(l.local_address().port()),
                             eddy_test::certs().ca});
    co_return co_await serve_one(&l, eddy_test::default_server());
  };
  peer_process* p = nullptr;
  EXPECT_EQ(run(serve(&p)), "ok from python\n");
  std::unique_ptr<peer_process> owner(p);
  EXPECT_EQ(p->wait_exit(), 0) << p->output();
  EXPECT_NE(p->output().find("pong: from python TLSv1.3"), std::string::npos) << p->output();

  // Python as the server of eddy's client: it answers, then unwraps (close_notify).
  const std::uint16_t port = free_port();
  const std::string server_script =
      "import socket, ssl, sys\n"
      "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
      "ctx.load_cert_chain(sys.argv[2], sys.argv[3])\n"
      "l = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
      "c, _ = l.accept()\n"
      "c.close()\n"  // the readiness probe
      "c, _ = l.accept()\n"
      "s = ctx.wrap_socket(c, server_side=True)\n"
      "line = s.recv(1024)\n"
      "s.sendall(b'python got ' + line)\n"
      "s.unwrap().close()\n";
  peer_process srv({python_exe, "-c", server_script, std::to_string(port), c.server.cert, c.server.key});
  auto client = [](std::uint16_t port) -> task<std::string> {
    co_await wait_listening(port);
    auto t = co_await eddy_test::tls_connect(eddy::socket_address::loopback(port), eddy_test::default_client());
    co_await t.write_all("hi\n");
    std::string a = co_await t.read_line();
    std::string b = co_await t.read_line();  // "": the peer's close_notify
    co_await t.shutdown();
    co_return a + "|" + b;
  };
  EXPECT_EQ(run(client(port)), "python got hi\n|") << srv.output();
  EXPECT_EQ(srv.wait_exit(), 0) << srv.output();
}

namespace {

// A real ClientHello, made by an OpenSSL client in memory (nothing is sent).
std::string client_hello() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rb = BIO_new(BIO_s_mem());
  BIO* wb = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rb, wb);
  SSL_set_tlsext_host_name(ssl, "localhost");
  SSL_connect(ssl);  // WANT_READ after writing the hello
  char* data = nullptr;
  const long n = BIO_get_mem_data(wb, &data);
  std::string hello(data, static_cast<std::size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

// Sends `bytes` raw on a new connection to `l`'s port while eddy's server handles
// it; returns the server's outcome. Then a good client must still be served.
task<std::string> abuse(std::string bytes, bool then_close) {
  auto l = eddy_test::loopback_listener();
  auto srv = eddy::spawn(serve_one(&l, eddy_test::default_server()));
  auto raw = co_await eddy::tcp_stream::connect(l.local_address());
  co_await raw.write_all(bytes);
  if (then_close) raw.shutdown_write();
  std::string outcome = co_await srv;
  co_await raw.close();
  // The same listener serves a good client next.
  auto srv2 = eddy::spawn(serve_one(&l, eddy_test::default_server()));
  auto good = co_await eddy_test::tls_connect(l.local_address(), eddy_test::default_client());
  co_await good.write_all("fine\n");
  EXPECT_EQ(co_await good.read_line(), "pong: fine\n");
  co_await good.close();
  EXPECT_EQ(co_await srv2, "ok fine\n");
  co_return outcome;
}

}  // namespace

TEST_P(tls_peers_test, plain_text_on_the_tls_port_is_a_clear_handshake_error) {
  const std::string r = run(abuse("GET / HTTP/1.1\r\nHost: x\r\n\r\n", false));
  EXPECT_NE(r.find("TLS handshake"), std::string::npos) << r;
  EXPECT_NE(r.find("http request"), std::string::npos) << r;
}

TEST_P(tls_peers_test, garbage_after_a_real_client_hello_is_a_clear_error) {
  const std::string r = run(abuse(client_hello() + std::string(300, '\x17'), false));
  EXPECT_EQ(r.rfind("error: eddy: TLS handshake", 0), 0u) << r;
}

TEST_P(tls_peers_test, a_record_longer_than_the_maximum_is_refused) {
  // A handshake record header announcing 65535 bytes (the limit is 16 KiB + 2 KiB).
  std::string rec = "\x16\x03\x01\xff\xff";
  rec += std::string(1000, '\0');
  const std::string r = run(abuse(rec, false));
  EXPECT_EQ(r.rfind("error: eddy: TLS handshake", 0), 0u) << r;
  EXPECT_TRUE(r.find("length too long") != std::string::npos || r.find("overflow") != std::string::npos) << r;
}

TEST_P(tls_peers_test, a_hello_cut_short_by_the_client_closing_is_an_error_not_a_hang) {
  const std::string hello = client_hello();
  const std::string r = run(abuse(hello.substr(0, hello.size() / 2), true));
  EXPECT_NE(r.find("closed the connection"), std::string::npos) << r;
}

TEST_P(tls_peers_test, a_renegotiation_request_is_refused_and_the_server_goes_on) {
  auto f = [](peer_process** out) -> task<std::string> {
    auto l = eddy_test::loopback_listener();
    // TLS 1.2 (1.3 has no renegotiation); "R" on s_client's stdin renegotiates.
    auto* p = new peer_process({"openssl", "s_client", "-connect",
                                "127.0.0.1:" + std::to_string(l.local_address().port()), "-tls1_2",
                                "-servername", "localhost", "-CAfile", eddy_test::certs().ca});
    *out = p;
    p->write_stdin("R\n");
    std::string r = co_await serve_one(&l, eddy_test::default_server());
    // And the next client is served.
    auto srv2 = eddy::spawn(serve_one(&l, eddy_test::default_server()));
    auto good = co_await eddy_test::tls_connect(l.local_address(), eddy_test::default_client());
    co_await good.write_all("next\n");
    EXPECT_EQ(co_await good.read_line(), "pong: next\n");
    co_await good.close();
    EXPECT_EQ(co_await srv2, "ok next\n");
    co_return r;
  };
  peer_process* p = nullptr;
  const std::string r = run(f(&p));
  std::unique_ptr<peer_process> owner(p);
  // The server refused: OpenSSL's client treats the no_renegotiation alert as
  // fatal, so the connection ends with an error on one side or the other, never
  // with a second handshake.
  EXPECT_NE(r.rfind("ok", 0), 0u) << r;
  EXPECT_NE(r.find("eddy: TLS"), std::string::npos) << r;
  p->close_stdin();
  p->wait_exit(10s);
}

EDDY_BACKEND_TEST_SUITE(tls_peers_test);
