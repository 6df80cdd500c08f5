// tls_stream between eddy's own client and server, on every backend: echo from 0 B
// to 4 MiB, TLS 1.2 and 1.3, Unix sockets, ALPN, SNI picking the certificate,
// resumption on the second connection, mutual TLS, verification failures named
// (untrusted, expired, wrong name), truncation as an error, close_notify both ways,
// a read cancelled mid-record, timeouts, the kTLS fallback and why, bad options,
// and eddy::relay between a TLS stream and a plain one.
#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "io/tls_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;
using eddy::tls_errc;
using eddy_test::checksum;
using eddy_test::payload;

namespace {

class tls_test : public eddy_test::loop_test {};

// Not built inside the coroutines: GCC 12 rejects a braced list of string literals
// there ("array used as initializer").
std::vector<std::string> alpn_list(const char* a, const char* b) { return {a, b}; }

}  // namespace

TEST_P(tls_test, echo_round_trips_from_zero_bytes_to_four_mib_keep_every_byte) {
  auto f = []() -> task<int> {
    auto l = eddy_test::loopback_listener();
    const std::size_t sizes[] = {0, 1, 16'384, 16'385, 1'000'001, 4u << 20};
    auto srv = eddy::spawn(eddy_test::tls_echo_server(&l, eddy_test::default_server(), std::size(sizes)));
    const auto ctx = eddy_test::default_client();
    int ok = 0;
    for (std::size_t sz : sizes) {
      auto c = co_await eddy_test::tls_connect(l.local_address(), ctx);
      const auto data = payload(sz, static_cast<std::uint32_t>(sz));
      ok += co_await eddy_test::send_and_read_back(&c, std::span<const std::byte>(data), data.size()) == checksum(data);
      co_await c.close();
    }
    co_await srv;
    co_return ok;
  };
  EXPECT_EQ(run(f()), 6);
}

TEST_P(tls_test, tls12_and_tls13_are_both_spoken_and_reported) {
  auto f = [](eddy::tls_version max) -> task<std::string> {
    auto l = eddy_test::loopback_listener();
    auto srv = eddy::spawn(eddy_test::tls_echo_server(&l, eddy_test::default_server(), 1));
    const auto cc = eddy_test::client_context({.max_version = max});
    auto c = co_await eddy_test::tls_connect(l.local_address(), cc);
    co_await c.write_all("hi");
    std::string back = co_await c.read_until("hi");
    EXPECT_EQ(back, "hi");
    EXPECT_FALSE(c.cipher().empty());
    std::string v = c.protocol_version();
    co_await c.shutdown();
    co_await srv;
    co_return v;
  };
  EXPECT_EQ(run(f(eddy::tls_version::tls1_3)), "TLSv1.3");
  EXPECT_EQ(run(f(eddy::tls_version::tls1_2)), "TLSv1.2");
}

TEST_P(tls_test, a_unix_socket_pair_carries_tls_too) {
  auto f = []() -> task<std::string> {
    // No structured binding: GCC 12 gets them wrong inside coroutines.
    auto ab = eddy::unix_stream::pair();
    eddy::unix_stream a = std::move(ab.first), b = std::move(ab.second);
    auto server = [](eddy::unix_stream s) -> task<void> {
      auto t = co_await eddy::tls_stream::accept(std::move(s), eddy_test::default_server());
      std::string line = co_await t.read_line();
      co_await t.write_all("got " + line);
      co_await t.shutdown();
    };
    auto srv = eddy::spawn(server(std::move(b)));
    const eddy::tls_context cc = eddy_test::default_client();
    auto c = co_await eddy::tls_stream::connect(std::move(a), cc, "localhost");
    co_await c.write_all("line\n");
    std::string reply = co_await c.read_line();
    EXPECT_EQ(co_await c.read_line(), "");  // close_notify: a clean end
    EXPECT_EQ(c.ktls().why, "kTLS needs a TCP socket");
    co_await c.close();
    co_await srv;
    co_return reply;
  };
  EXPECT_EQ(run(f()), "got line\n");
}

TEST_P(tls_test, alpn_agrees_on_the_servers_first_choice_and_sni_is_seen) {
  auto f = []() -> task<void> {
    auto l = eddy_test::loopback_listener();
    auto server = [](eddy::tcp_listener* l) -> task<std::string> {
      const auto ctx = eddy_test::server_context({.alpn = alpn_list("h2", "http/1.1")});
      auto t = co_await eddy::tls_stream::accept(co_await l->accept(), ctx);
      std::string seen = t.server_name() + " " + t.alpn_protocol();
      co_await t.shutdown();
      co_return seen;
    };
    auto srv = eddy::spawn(server(&l));
    const auto cc = eddy_test::client_context({.alpn = alpn_list("http/1.1", "h2")});
    auto c = co_await eddy_test::tls_connect(l.local_address(), cc);
    EXPECT_EQ(c.alpn_protocol(), "h2");
    EXPECT_EQ(co_await c.read_some(std::span<std::byte>()), 0u);
    co_await c.shutdown();
    EXPECT_EQ(co_await srv, "localhost h2");
  };
  run(f());
}

TEST_P(tls_test, sni_picks_the_certificate_of_the_name_asked_for) {
  auto f = []() -> task<void> {
    auto l = eddy_test::loopback_listener();
    auto ctx = eddy_test::default_server();
    ctx.add_server_name("other.example", eddy_test::server_context(
                                             {.cert_file = eddy_test::certs().other.cert,
                                              .key_file = eddy_test::certs().other.key}));
    auto srv = eddy::spawn(eddy_test::tls_echo_server(&l, ctx, 2));
    const auto cc = eddy_test::default_client();
    auto a = co_await eddy_test::tls_connect(l.local_address(), cc, "other.example");
    EXPECT_EQ(a.peer_subject(), "/CN=other.example");
    co_await a.shutdown();
    auto b = co_await eddy_test::tls_connect(l.local_address(), cc, "localhost");
    EXPECT_EQ(b.peer_subject(), "/CN=localhost");
    co_await b.shutdown();
    co_await srv;
  };
  run(f());
}

TEST_P(tls_test, the_second_connection_resumes_the_first_ones_session) {
  auto f = [](eddy::tls_version max) -> task<std::vector<bool>> {
    auto l = eddy_test::loopback_listener();
    auto srv = eddy::spawn(eddy_test::tls_echo_server(&l, eddy_test::default_server(), 3));
    const auto cc = eddy_test::client_context({.max_version = max});
    std::vector<bool> reused;
    for (int i = 0; i < 3; ++i) {
      auto c = co_await eddy_test::tls_connect(l.local_address(), cc);
      // TLS 1.3 tickets come after the handshake: a read takes them in.
      co_await c.write_all("x");
      EXPECT_EQ(co_await c.read_exact_string(1), "x");
      reused.push_back(c.session_reused());
      co_await c.shutdown();
    }
    EXPECT_EQ(cc.cached_sessions(), 1u);
    co_await srv;
    co_return reused;
  };
  EXPECT_EQ(run(f(eddy::tls_version::tls1_3)), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(run(f(eddy::tls_version::tls1_2)), (std::vector<bool>{false, true, true}));
}

TEST_P(tls_test, mutual_tls_lets_in_a_client_with_a_certificate_and_refuses_one_without) {
  auto f = []() -> task<void> {
    auto l = eddy_test::loopback_listener();
    const auto& c = eddy_test::certs();
    auto sctx = eddy_test::server_context(
        {.client_auth = eddy::tls_client_auth::required, .client_ca_file = c.ca});
    auto server = [](eddy::tcp_listener* l, eddy::tls_context ctx) -> task<std::string> {
      // The first client has no certificate: its handshake fails on this side.
      co_await eddy_test::expect_tls_error(eddy::tls_stream::accept(co_await l->accept(), ctx),
                                           tls_errc::handshake_failed, "certificate");
      auto t = co_await eddy::tls_stream::accept(co_await l->accept(), ctx);
      std::string who = t.peer_subject();
      co_await t.write_all("welcome");
      co_await t.shutdown();
      co_return who;
    };
    auto srv = eddy::spawn(server(&l, sctx));
    {
      // TLS 1.3: the client's handshake ends before the server has looked at its
      // (missing) certificate, so the refusal arrives as an alert on the first read.
      auto no_cert = co_await eddy_test::tls_connect(l.local_address(), eddy_test::default_client());
      std::array<std::byte, 16> buf{};
      co_await eddy_test::expect_tls_error(no_cert.read_some(buf), tls_errc::protocol_error, "alert");
      co_await no_cert.close();
    }
    const auto mtls = eddy_test::client_context({.cert_file = c.client.cert, .key_file = c.client.key});
    auto with_cert = co_await eddy_test::tls_connect(l.local_address(), mtls);
    EXPECT_EQ(co_await with_cert.read_exact_string(7), "welcome");
    co_await with_cert.shutdown();
    EXPECT_EQ(co_await srv, "/CN=eddy test client");
  };
  run(f());
}

TEST_P(tls_test, verification_failures_name_the_certificate_and_why_and_the_server_keeps_serving) {
  auto f = []() -> task<void> {
    const auto& c = eddy_test::certs();
    struct bad {
      eddy_test::cert_pair pair;
      std::string name;
      std::string why;
    };
    const bad cases[] = {
        {c.self_signed, "localhost", "self-signed certificate"},
        {c.expired, "localhost", "certificate has expired"},
        {c.server, "example.com", "hostname mismatch"},
        {c.server, "127.0.0.2", "IP address mismatch"},
    };
    for (const bad& b : cases) {
      auto l = eddy_test::loopback_listener();
      auto srv = eddy::spawn(eddy_test::tls_echo_server(
          &l, eddy_test::server_context({.cert_file = b.pair.cert, .key_file = b.pair.key}), 1));
      try {
        co_await eddy_test::tls_connect(l.local_address(), eddy_test::default_client(), b.name);
        ADD_FAILURE() << "connected to " << b.pair.cert << " as " << b.name;
      } catch (const eddy::tls_error& e) {
        EXPECT_EQ(e.code(), tls_errc::certificate_verify_failed) << e.what();
        EXPECT_NE(std::string(e.what()).find(b.why), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("depth 0"), std::string::npos) << e.what();
        EXPECT_NE(e.verify_result(), 0);
      }
      co_await srv;
    }
    // The same server process keeps serving: a good connection works after them.
    auto l = eddy_test::loopback_listener();
    auto srv = eddy::spawn(eddy_test::tls_echo_server(&l, eddy_test::default_server(), 1));
    auto ok = co_await eddy_test::tls_connect(l.local_address(), eddy_test::default_client(), "127.0.0.1");
    EXPECT_EQ(ok.server_name(), "");  // an IP address is not sent as SNI
    co_await ok.shutdown();
    co_await srv;
  };
  run(f());
}

TEST_P(tls_test, an_end_without_close_notify_is_a_truncation_error_not_a_clean_end) {
  auto f = []() -> task<void> {
    auto l = eddy_test::loopback_listener();
    auto server = [](eddy::tcp_listener* l) -> task<void> {
      auto t = co_await eddy::tls_stream::accept(co_await l->accept(), eddy_test::default_server());
      co_await t.write_all("partial");
      t.abort();  // the transport closes, no close_notify
    };
    auto srv = eddy::spawn(server(&l));
    auto c = co_await eddy_test::tls_connect(l.local_address(), eddy_test::default_client());
    EXPECT_EQ(co_await c.read_exact_string(7), "partial");
    std::array<std::byte, 16> buf{};
    co_await eddy_test::expect_tls_error(c.read_some(buf), tls_errc::truncated, "without close_notify");
    co_await c.close();
    co_await srv;
  };
  run(f());
}

TEST_P(tls_test, shutdown_write_sends_close_notify_and_the_other_direction_goes_on) {
  auto f = []() -> task<std::string> {
    auto l = eddy_test::loopback_listener();
    auto server = [](eddy::tcp_listener* l) -> task<void> {
      auto t = co_await eddy::tls_stream::accept(co_await l->accept(), eddy_test::default_server());
      std::string all;
      for (;;) {
        std::string line = co_await t.read_line();
        if (line.empty()) break;  // the client's close_notify
        all += line;
      }
      co_await t.write_all("after your close_notify: " + all);
      co_await t.shutdown();
    };
    auto srv = eddy::spawn(server(&l));
    auto c = co_await eddy_test::tls_connect(l.local_address(), eddy_test::default_client());
    co_await c.write_all("a\nb\n");
    co_await c.shutdown_write();
    co_await eddy_test::expect_tls_error(c.write_all("late"), tls_errc::closed, "after shutdown_write");
    std::string reply;
    std::array<std::byte, 100> buf{};
    for (;;) {
      const std::size_t n = co_await c.read_some(buf);
      if (n == 0) break;
      reply.append(reinterpret_cast<const char*>(buf.data()), n);
    }
    co_await c.close();
    co_await srv;
    co_return reply;
  };
  EXPECT_EQ(run(f()), "after your close_notify: a\nb\n");
}

// A client may close its socket right after its close_notify (RFC 8446 6.1 does not
// make it wait for ours): the server's own shutdown_write then meets a closed or
// reset connection, which is the normal end, not an error. (A proxy forwarding the
// upstream's end to such a client hit this on every connection.)
TEST_P(tls_test, shutdown_write_after_the_peer_closed_first_is_not_an_error) {
  auto f = [](unsigned tickets) -> task<bool> {
    auto l = eddy_test::loopback_listener();
    eddy::event read_end, client_closed;
    auto server = [](eddy::tcp_listener* l, eddy::tls_context ctx, eddy::event* read_end,
                     eddy::event* client_closed) -> task<bool> {
      auto t = co_await eddy::tls_stream::accept(co_await l->accept(), ctx);
      EXPECT_EQ(co_await t.read_line(), "bye\n");
      std::array<std::byte, 16> buf{};
      EXPECT_EQ(co_await t.read_some(buf), 0u);  // the client's close_notify
      read_end->set();
      co_await client_closed->wait();
      bool ok = true;
      // Twice: the second finds close_notify sent and the socket gone.
      for (int i = 0; i < 2; ++i) {
        try {
          co_await t.shutdown_write();
        } catch (const std::exception& e) {
          ADD_FAILURE() << "shutdown_write: " << e.what();
          ok = false;
        }
      }
      co_await t.close();
      co_return ok;
    };
    // With tickets the client closes with the ticket unread (the kernel answers
    // with a reset); without, with an empty receive queue (a FIN).
    const auto sc = eddy_test::server_context({.tickets = tickets});
    auto srv = eddy::spawn(server(&l, sc, &read_end, &client_closed));
    auto c = co_await eddy_test::tls_connect(l.local_address(), eddy_test::default_client());
    co_await c.write_all("bye\n");
    co_await c.shutdown_write();
    co_await read_end.wait();
    co_await c.close();
    client_closed.set();
    co_return co_await srv;
  };
  EXPECT_TRUE(run(f(0)));
  EXPECT_TRUE(run(f(1)));
}

// A relay between two unix pairs whose server->client direction can be held back,
// so a TLS record can be cut in the middle.
struct gate {
  bool limited = false;
  std::size_t allow = 0;  // bytes still let through while limited
  eddy::event open;
};

task<void> relay(eddy::unix_stream* from, eddy::unix_stream* to, gate* g) {
  std::array<std::byte, 4096> buf{};
  for (;;) {
    const std::size_t n = co_await from->read_some(buf);
    if (n == 0) break;
    std::size_t pass = n;
    // A read may have been waiting since before the gate closed: hold back
    // whatever is over the allowance until the gate opens.
    if (g != nullptr && g->limited) pass = std::min(n, g->allow);
    if (pass > 0) co_await to->write_all(std::span<const std::byte>(buf.data(), pass));
    if (g != nullptr && g->limited) {
      g->allow -= pass;
      if (pass < n || g->allow == 0) {
        co_await g->open.wait();
        g->limited = false;
        if (pass < n) co_await to->write_all(std::span<const std::byte>(buf.data() + pass, n - pass));
      }
    }
  }
  to->shutdown_write();
}

TEST_P(tls_test, a_read_cancelled_in_the_middle_of_a_record_leaves_the_stream_usable) {
  auto f = []() -> task<std::string> {
    auto p1 = eddy::unix_stream::pair();
    auto p2 = eddy::unix_stream::pair();
    eddy::unix_stream c_end = std::move(p1.first), r1 = std::move(p1.second);
    eddy::unix_stream r2 = std::move(p2.first), s_end = std::move(p2.second);
    gate g;
    auto server = [](eddy::unix_stream s, gate* g) -> task<void> {
      // TLS 1.3 without tickets: once the server's handshake is done, every byte of
      // its own flight has already reached the client, so what is held back next
      // is the application record.
      const auto ctx = eddy_test::server_context({.tickets = 0});
      auto t = co_await eddy::tls_stream::accept(std::move(s), ctx);
      g->limited = true;
      g->allow = 10;
      co_await t.write_all(std::string(1000, 'r'));
      std::string ack = co_await t.read_line();
      co_await t.write_all("second " + ack);
      co_await t.shutdown();
    };
    eddy::task_group relays;
    relays.spawn(relay(&r1, &r2, nullptr)).detach();
    relays.spawn(relay(&r2, &r1, &g)).detach();
    auto srv = eddy::spawn(server(std::move(s_end), &g));
    auto c = co_await eddy::tls_stream::connect(std::move(c_end), eddy_test::default_client(), "localhost");
    std::array<std::byte, 2000> buf{};
    try {
      co_await eddy::with_timeout(100ms, c.read_some(buf));
      ADD_FAILURE() << "read a record of which only 10 bytes were sent";
    } catch (const eddy::timeout_error&) {
    }
    g.open.set();
    EXPECT_EQ(co_await c.read_exact_string(1000), std::string(1000, 'r'));
    co_await c.write_all("ok\n");
    std::string second = co_await c.read_line();
    EXPECT_EQ(co_await c.read_line(), "");
    co_await c.shutdown();
    co_await srv;
    co_await relays.join();
    co_return second;
  };
  EXPECT_EQ(run(f()), "second ok\n");
}

TEST_P(tls_test, a_stalled_handshake_times_out_and_says_so) {
  auto f = []() -> task<void> {
    auto l = eddy_test::loopback_listener();
    auto silent = co_await eddy::tcp_stream::connect(l.local_address());  // never says hello
    co_await eddy_test::expect_tls_error(
        eddy::tls_stream::accept(co_await l.accept(), eddy_test::default_server(),
                                 {.handshake_timeout = 50ms}),
        tls_errc::handshake_timeout, "timed out after 50 ms");
    co_await silent.close();
  };
  run(f());
}

TEST_P(tls_test, shutdown_waits_for_the_peers_close_notify_and_times_out_without_it) {
  auto f = []() -> task<void> {
    auto l = eddy_test::loopback_listener();
    eddy::event done;
    auto server = [](eddy::tcp_listener* l, eddy::event* done) -> task<void> {
      auto t = co_await eddy::tls_stream::accept(co_await l->accept(), eddy_test::default_server());
      co_await done->wait();  // reads nothing: never answers close_notify
      co_await t.close();
    };
    auto srv = eddy::spawn(server(&l, &done));
    auto c = co_await eddy_test::tls_connect(l.local_address(), eddy_test::default_client());
    co_await eddy_test::expect_tls_error(c.shutdown(50ms), tls_errc::shutdown_timeout, "no close_notify");
    done.set();
    co_await srv;
  };
  run(f());
}

TEST_P(tls_test, ktls_falls_back_to_user_space_and_the_probe_says_why) {
  const eddy::ktls_support k = eddy::probe_ktls();
  if (!k.ulp) {
    // This machine's kernel: built without CONFIG_TLS.
    EXPECT_NE(k.why.find("TCP_ULP"), std::string::npos) << k.why;
    EXPECT_FALSE(k.send);
    EXPECT_FALSE(k.receive);
  }
  auto f = [](bool allow) -> task<eddy::ktls_state> {
    auto l = eddy_test::loopback_listener();
    auto srv = eddy::spawn(eddy_test::tls_echo_server(&l, eddy_test::default_server(), 1));
    const auto cc = eddy_test::client_context({.ktls = allow});
    auto c = co_await eddy_test::tls_connect(l.local_address(), cc);
    co_await c.write_all("still works");
    EXPECT_EQ(co_await c.read_exact_string(11), "still works");
    eddy::ktls_state st = c.ktls();
    co_await c.shutdown();
    co_await srv;
    co_return st;
  };
  const eddy::ktls_state on = run(f(true));
  EXPECT_FALSE(on.send);
  EXPECT_FALSE(on.receive);
  if (!k.ulp) {
    EXPECT_EQ(on.why, k.why);
  }
  const eddy::ktls_state off = run(f(false));
  EXPECT_FALSE(off.send);
  EXPECT_EQ(off.why, "off in the context (ktls = false)");
}

TEST_P(tls_test, bad_options_and_files_are_refused_with_a_clear_error) {
  const auto& c = eddy_test::certs();
  EXPECT_THROW(eddy::tls_context::server({}), std::invalid_argument);
  try {
    eddy::tls_context::server({.cert_file = c.dir + "/missing.pem", .key_file = c.server.key});
    ADD_FAILURE();
  } catch (const eddy::tls_error& e) {
    EXPECT_EQ(e.code(), tls_errc::configuration);
    EXPECT_NE(std::string(e.what()).find("missing.pem"), std::string::npos) << e.what();
  }
  try {
    eddy::tls_context::server({.cert_file = c.server.cert, .key_file = c.other.key});
    ADD_FAILURE();
  } catch (const eddy::tls_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
  }
  EXPECT_THROW(eddy::tls_context::client({.alpn = {std::string(256, 'a')}}), std::invalid_argument);
  EXPECT_THROW(eddy::tls_context::client({.alpn = {""}}), std::invalid_argument);
  EXPECT_THROW(eddy::tls_context::client({.min_version = eddy::tls_version::tls1_3,
                                          .max_version = eddy::tls_version::tls1_2}),
               std::invalid_argument);
  EXPECT_THROW(eddy::tls_context::client({.session_cache_size = 0}), std::invalid_argument);
  EXPECT_THROW(eddy::tls_context::server({.cert_file = c.server.cert, .key_file = c.server.key,
                                          .client_auth = eddy::tls_client_auth::required}),
               std::invalid_argument);
  EXPECT_EQ(eddy::tls_category().name(), std::string("eddy.tls"));
  auto f = []() -> task<void> {
    auto l = eddy_test::loopback_listener();
    auto s = co_await eddy::tcp_stream::connect(l.local_address());
    // Verification on, no name to verify: refused before any byte is sent.
    EXPECT_THROW(co_await eddy::tls_stream::connect(std::move(s), eddy_test::default_client(), ""),
                 std::invalid_argument);
    auto s2 = co_await eddy::tcp_stream::connect(l.local_address());
    EXPECT_THROW(co_await eddy::tls_stream::connect(std::move(s2), eddy_test::default_server(), "localhost"),
                 std::invalid_argument);
    auto s3 = co_await eddy::tcp_stream::connect(l.local_address());
    EXPECT_THROW(co_await eddy::tls_stream::connect(std::move(s3), eddy_test::default_client(), "localhost",
                                                    {.handshake_timeout = 0ms}),
                 std::invalid_argument);
    co_await l.close();
  };
  run(f());
}

TEST_P(tls_test, a_hundred_concurrent_clients_each_send_and_receive_their_megabytes) {
  // 100 × 1 MiB each way in the full run (EDDY_TLS_FULL=1); 100 × 128 KiB in the
  // suite (ASan makes every copy slow).
  const bool full = std::getenv("EDDY_TLS_FULL") != nullptr;
  const std::size_t clients = 100, size = full ? (1u << 20) : (128u << 10);
  auto one = [](eddy::socket_address a, eddy::tls_context ctx, std::size_t size, std::uint32_t seed) -> task<int> {
    auto c = co_await eddy_test::tls_connect(a, ctx);
    const auto data = payload(size, seed);
    const bool ok = co_await eddy_test::send_and_read_back(&c, std::span<const std::byte>(data), data.size()) == checksum(data);
    co_await c.close();
    co_return ok ? 1 : 0;
  };
  auto f = [&]() -> task<int> {
    auto l = eddy_test::loopback_listener();
    auto srv = eddy::spawn(eddy_test::tls_echo_server(&l, eddy_test::default_server(), clients));
    const auto ctx = eddy_test::default_client();
    std::vector<task<int>> all;
    for (std::size_t i = 0; i < clients; ++i)
      all.push_back(one(l.local_address(), ctx, size, static_cast<std::uint32_t>(i)));
    const std::vector<int> oks = co_await eddy::when_all(std::move(all));
    co_await srv;
    int n = 0;
    for (int ok : oks) n += ok;
    co_return n;
  };
  EXPECT_EQ(run(f()), static_cast<int>(clients));
}

namespace {

// A TLS-terminating relay: the client speaks TLS to the relay, which speaks
// plain TCP to its upstream; eddy::relay's copying form joins the two.
task<bool> tls_to_plain_relay() {
  auto l = eddy_test::loopback_listener();
  auto up_l = eddy_test::loopback_listener();
  auto acc = eddy::spawn(l.accept());
  const eddy::tls_context cc = eddy_test::default_client();
  auto conn = eddy::spawn(eddy_test::tls_connect(l.local_address(), cc));
  eddy::tls_stream front = co_await eddy::tls_stream::accept(co_await acc, eddy_test::default_server());
  eddy::tls_stream client = co_await conn;
  auto up_acc = eddy::spawn(up_l.accept());
  eddy::tcp_stream back = co_await eddy::tcp_stream::connect(up_l.local_address());
  eddy::tcp_stream upstream = co_await up_acc;

  eddy::relay_result progress;
  auto r = eddy::spawn(eddy::relay(front, back, {.progress = &progress}));
  const auto request = payload((1u << 20) + 5, 11);
  const auto reply = payload((3u << 20) / 2, 12);
  // The upstream reads the request to its end (the client's close_notify became
  // a FIN), then answers.
  auto serve = [](eddy::tcp_stream* u, std::vector<std::byte> answer) -> task<std::uint64_t> {
    std::vector<std::byte> got;
    co_await u->read_to_end(got);
    co_await u->write_all(std::span<const std::byte>(answer));
    u->shutdown_write();
    co_return checksum(got);
  };
  auto srv = eddy::spawn(serve(&upstream, reply));
  const std::uint64_t echoed = co_await eddy_test::send_and_read_back(&client, std::span<const std::byte>(request), reply.size());
  const std::uint64_t at_upstream = co_await srv;
  const eddy::relay_result moved = co_await r;
  bool ok = at_upstream == checksum(request) && echoed == checksum(reply);
  ok = ok && moved.a_to_b == request.size() && moved.b_to_a == reply.size();
  ok = ok && progress.a_to_b == moved.a_to_b && progress.b_to_a == moved.b_to_a;
  co_await client.close();
  co_await front.close();
  co_await back.close();
  co_await upstream.close();
  co_await l.close();
  co_await up_l.close();
  co_return ok;
}

}  // namespace

TEST_P(tls_test, relay_joins_a_tls_stream_and_a_plain_one_both_ways_with_half_closes) {
  EXPECT_TRUE(run(tls_to_plain_relay()));
}

EDDY_BACKEND_TEST_SUITE(tls_test);
