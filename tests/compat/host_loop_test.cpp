// eddy attached to a host program's libuv loop (loop_options::uv_loop). The host
// is written as any libuv program is: its own uv_timer_t ticking and a uv_tcp_t
// echo server, driven by the host's uv_run. On the same loop and thread eddy tasks
// serve another listener, offload work to the thread pool, and talk to the host's
// echo server; a plain libuv client talks to eddy's. Both sides keep working, and
// once the eddy loop is closed uv_loop_close succeeds: no handle was left behind.
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <eddy/eddy.hpp>
#include <eddy/sched/offload.hpp>

#include "io/net_support.hpp"

namespace {

// ---- the host program: plain libuv ------------------------------------------------

struct host_echo {
  uv_tcp_t server{};
  int port = 0;
  int echoed_bytes = 0;
};

struct host_conn {
  uv_tcp_t tcp{};
  host_echo* echo = nullptr;
};

struct host_write {
  uv_write_t req{};
  std::vector<char> data;
};

void host_on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* c = static_cast<host_conn*>(s->data);
  if (n > 0) {
    auto* w = new host_write;
    w->data.assign(buf->base, buf->base + n);
    c->echo->echoed_bytes += static_cast<int>(n);
    const uv_buf_t out = uv_buf_init(w->data.data(), static_cast<unsigned>(n));
    uv_write(&w->req, s, &out, 1, [](uv_write_t* r, int) { delete reinterpret_cast<host_write*>(r); });
  } else if (n < 0) {  // EOF or error: done with this connection
    uv_close(reinterpret_cast<uv_handle_t*>(s),
             [](uv_handle_t* h) { delete static_cast<host_conn*>(h->data); });
  }
  delete[] buf->base;
}

void host_on_connection(uv_stream_t* server, int status) {
  ASSERT_EQ(status, 0);
  auto* echo = static_cast<host_echo*>(server->data);
  auto* c = new host_conn;
  c->echo = echo;
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  ASSERT_EQ(uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)), 0);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t*, size_t want, uv_buf_t* b) { *b = uv_buf_init(new char[want], static_cast<unsigned>(want)); },
      &host_on_read);
}

void host_listen(uv_loop_t* loop, host_echo* e) {
  uv_tcp_init(loop, &e->server);
  e->server.data = e;
  sockaddr_in a{};
  uv_ip4_addr("127.0.0.1", 0, &a);
  ASSERT_EQ(uv_tcp_bind(&e->server, reinterpret_cast<const sockaddr*>(&a), 0), 0);
  ASSERT_EQ(uv_listen(reinterpret_cast<uv_stream_t*>(&e->server), 16, &host_on_connection), 0);
  sockaddr_storage got{};
  int len = sizeof got;
  uv_tcp_getsockname(&e->server, reinterpret_cast<sockaddr*>(&got), &len);
  e->port = ntohs(reinterpret_cast<sockaddr_in*>(&got)->sin_port);
}

// A plain libuv client: connects to eddy's listener, sends `out`, half-closes,
// collects the echo until EOF.
struct host_client {
  uv_tcp_t tcp{};
  uv_connect_t conn{};
  uv_write_t write{};
  uv_shutdown_t shut{};
  std::string out;
  std::string in;
  bool done = false;
};

void host_client_start(uv_loop_t* loop, host_client* c, int port) {
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  c->conn.data = c;
  sockaddr_in a{};
  uv_ip4_addr("127.0.0.1", port, &a);
  uv_tcp_connect(&c->conn, &c->tcp, reinterpret_cast<const sockaddr*>(&a), [](uv_connect_t* r, int status) {
    auto* c = static_cast<host_client*>(r->data);
    ASSERT_EQ(status, 0);
    const uv_buf_t b = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
    uv_write(&c->write, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1, [](uv_write_t*, int s) { ASSERT_EQ(s, 0); });
    uv_shutdown(&c->shut, reinterpret_cast<uv_stream_t*>(&c->tcp), [](uv_shutdown_t*, int s) { ASSERT_EQ(s, 0); });
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&c->tcp),
        [](uv_handle_t*, size_t want, uv_buf_t* b) { *b = uv_buf_init(new char[want], static_cast<unsigned>(want)); },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
          auto* c = static_cast<host_client*>(s->data);
          if (n > 0) c->in.append(b->base, static_cast<std::size_t>(n));
          if (n < 0) {
            c->done = true;
            uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
          }
          delete[] b->base;
        });
  });
}

// ---- eddy's side -------------------------------------------------------------------

// Talks to the host's libuv echo server through eddy's sockets.
eddy::task<std::string> eddy_client(int port, std::string msg) {
  auto c = co_await eddy::tcp_stream::connect(eddy::socket_address::loopback(static_cast<std::uint16_t>(port)));
  co_await c.write_all(std::as_bytes(std::span(msg)));
  c.shutdown_write();
  std::string got;
  std::vector<std::byte> buf(4096);
  for (;;) {
    const std::size_t n = co_await c.read_some(buf);
    if (n == 0) break;
    got.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  co_await c.close();
  co_return got;
}

}  // namespace

TEST(host_loop_test, eddy_tasks_and_a_plain_libuv_program_share_one_loop_and_leave_no_handle) {
  uv_loop_t host;
  ASSERT_EQ(uv_loop_init(&host), 0);
  {
    eddy::loop_options o;
    o.uv_loop = &host;
    eddy::loop el(o);
    EXPECT_EQ(el.backend(), eddy::backend_kind::libuv);

    // The host's own work: a ticking timer and a libuv echo server.
    int ticks = 0;
    uv_timer_t tick;
    uv_timer_init(&host, &tick);
    tick.data = &ticks;
    uv_timer_start(&tick, [](uv_timer_t* t) { ++*static_cast<int*>(t->data); }, 1, 1);
    host_echo echo;
    host_listen(&host, &echo);

    // eddy's work on the same loop: an echo listener, a thread-pool offload, and
    // a client of the host's server.
    // Sockets are made inside a task (they belong to the running loop); the port
    // is published for the host's client.
    int eddy_port = 0;
    auto server = el.spawn([](int* port) -> eddy::task<void> {
      auto lis = eddy_test::loopback_listener();
      *port = lis.local_address().port();
      co_await eddy_test::echo_server(&lis, 1);
      co_await lis.close();
    }(&eddy_port));
    std::atomic<std::thread::id> offload_thread{};
    auto offloaded = el.spawn([](std::atomic<std::thread::id>* where) -> eddy::task<int> {
      co_return co_await eddy::to_thread([where] {
        *where = std::this_thread::get_id();
        int s = 0;
        for (int i = 1; i <= 1000; ++i) s += i;
        return s;
      });
    }(&offload_thread));
    // An eddy timer, kept by a uv_timer_t on the host's loop, while the host's own
    // timer ticks: the host's ticks seen before and after the sleep differ.
    auto slept = el.spawn([](const int* ticks) -> eddy::task<int> {
      const int before = *ticks;
      co_await eddy::sleep_for(std::chrono::milliseconds(5));
      co_return *ticks - before;
    }(&ticks));
    const std::string to_host(20'000, 'h');
    auto talk = el.spawn(eddy_client(echo.port, to_host));

    host_client client;
    client.out = std::string(30'000, 'e');

    // The host drives everything; it stops its own handles once both sides are
    // done (an eddy task finishing is seen from a host callback).
    struct watch_state {
      eddy::join_handle<int>* slept;
      eddy::join_handle<int>* offloaded;
      eddy::join_handle<std::string>* talk;
      eddy::join_handle<void>* server;
      host_client* client;
      host_echo* echo;
      uv_timer_t* tick;
      int* eddy_port;
      bool client_started;
    } ws{&slept, &offloaded, &talk, &server, &client, &echo, &tick, &eddy_port, false};
    uv_check_t watch;
    uv_check_init(&host, &watch);
    watch.data = &ws;
    uv_check_start(&watch, [](uv_check_t* h) {
      auto* w = static_cast<watch_state*>(h->data);
      if (!w->client_started && *w->eddy_port != 0) {
        w->client_started = true;
        host_client_start(h->loop, w->client, *w->eddy_port);
      }
      if (w->slept->done() && w->offloaded->done() && w->talk->done() && w->server->done() && w->client->done) {
        uv_close(reinterpret_cast<uv_handle_t*>(w->tick), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&w->echo->server), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
      }
    });
    EXPECT_THROW(el.run([]() -> eddy::task<void> { co_return; }()), std::logic_error);

    uv_run(&host, UV_RUN_DEFAULT);

    EXPECT_GT(ticks, 0);
    EXPECT_EQ(client.in, client.out);       // libuv client ↔ eddy's echo
    EXPECT_EQ(echo.echoed_bytes, 20'000);   // eddy client ↔ libuv's echo
    EXPECT_NE(offload_thread.load(), std::this_thread::get_id());
    ASSERT_TRUE(offloaded.done());
    ASSERT_TRUE(talk.done());
    // Results are read by a task, which the host's next uv_run runs.
    auto check = el.spawn([](eddy::join_handle<int>* off, eddy::join_handle<std::string>* t,
                             eddy::join_handle<int>* sl) -> eddy::task<std::string> {
      const int s = co_await *off;
      const std::string r = co_await *t;
      const int ticks_while_asleep = co_await *sl;
      co_return std::to_string(s) + ":" + r.substr(0, 3) + ":" + std::to_string(r.size()) +
          (ticks_while_asleep > 0 ? ":ticked" : ":no tick");
    }(&offloaded, &talk, &slept));
    uv_run(&host, UV_RUN_DEFAULT);
    ASSERT_TRUE(check.done());
    std::string summary;
    el.spawn([](eddy::join_handle<std::string>* c, std::string* out) -> eddy::task<void> {
      *out = co_await *c;
    }(&check, &summary)).detach();
    uv_run(&host, UV_RUN_DEFAULT);
    EXPECT_EQ(summary, "500500:hhh:20000:ticked");
    el.close();  // outside uv_run, as documented
    EXPECT_EQ(el.stats().leaked_io, 0u);
  }
  EXPECT_EQ(uv_loop_close(&host), 0) << "a handle was left on the host's loop";
}

TEST(host_loop_test, work_queued_by_host_code_runs_in_the_hosts_next_uv_run_and_run_is_refused) {
  uv_loop_t host;
  ASSERT_EQ(uv_loop_init(&host), 0);
  {
    eddy::loop_options o;
    o.uv_loop = &host;
    eddy::loop el(o);
    // Nothing else on the host's loop: eddy's queued work alone keeps uv_run going.
    int ran = 0;
    el.call_soon([&ran] { ++ran; });
    uv_run(&host, UV_RUN_DEFAULT);
    EXPECT_EQ(ran, 1);
    auto h = el.spawn([]() -> eddy::task<int> {
      co_await eddy::sleep_for(std::chrono::milliseconds(2));
      co_return 7;
    }());
    uv_run(&host, UV_RUN_DEFAULT);  // returns once the task (and its timer) is done
    EXPECT_TRUE(h.done());
    // run() on an attached loop is refused before it starts anything.
    bool started = false;
    try {
      el.run([](bool* s) -> eddy::task<void> {
        *s = true;
        co_return;
      }(&started));
      ADD_FAILURE() << "run() on an attached loop did not throw";
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find("uv_run"), std::string::npos) << e.what();
    }
    uv_run(&host, UV_RUN_DEFAULT);
    EXPECT_FALSE(started);
    el.close();
  }
  EXPECT_EQ(uv_loop_close(&host), 0);
}

TEST(host_loop_test, the_host_option_needs_the_libuv_backend) {
  uv_loop_t host;
  ASSERT_EQ(uv_loop_init(&host), 0);
  eddy::loop_options o;
  o.uv_loop = &host;
  o.backend = eddy::backend_kind::epoll;
  EXPECT_THROW(eddy::loop l(o), std::invalid_argument);
  EXPECT_EQ(uv_loop_close(&host), 0);
}

namespace {

struct close_from_io_callback {
  eddy::loop* el = nullptr;
  bool in_callback = false;
  bool reentered = false;  // a host prepare handle ran inside the callback
  int fd = -1;
  uv_poll_t poll{};
  uv_prepare_t prepare{};
};

}  // namespace

// libuv's uv_run is not reentrant: closing the attached eddy loop from a host I/O
// callback must not run the host's loop from inside that callback. The eddy loop's
// tasks are cancelled there, its handles close in the host's closing phase, and
// uv_loop_close succeeds once the host's uv_run returns.
TEST(host_loop_test, closing_the_eddy_loop_from_a_host_io_callback_does_not_reenter_uv_run) {
  uv_loop_t host;
  ASSERT_EQ(uv_loop_init(&host), 0);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  {
    eddy::loop_options o;
    o.uv_loop = &host;
    eddy::loop el(o);
    bool cancelled = false;
    el.spawn([](bool* c) -> eddy::task<void> {
      try {
        co_await eddy::sleep_for(std::chrono::seconds(30));
      } catch (const eddy::cancelled_error&) {
        *c = true;
      }
    }(&cancelled)).detach();
    close_from_io_callback st;
    st.el = &el;
    st.fd = p[0];
    st.poll.data = st.prepare.data = &st;
    uv_prepare_init(&host, &st.prepare);
    uv_prepare_start(&st.prepare, [](uv_prepare_t* h) {
      auto* s = static_cast<close_from_io_callback*>(h->data);
      if (s->in_callback) s->reentered = true;
    });
    uv_unref(reinterpret_cast<uv_handle_t*>(&st.prepare));
    uv_poll_init(&host, &st.poll, p[0]);
    uv_poll_start(&st.poll, UV_READABLE, [](uv_poll_t* h, int, int) {
      auto* s = static_cast<close_from_io_callback*>(h->data);
      char b;
      (void)::read(s->fd, &b, 1);
      s->in_callback = true;
      s->el->close();
      s->in_callback = false;
      uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
      uv_close(reinterpret_cast<uv_handle_t*>(&s->prepare), nullptr);
    });
    ASSERT_EQ(::write(p[1], "x", 1), 1);
    uv_run(&host, UV_RUN_DEFAULT);
    EXPECT_FALSE(st.reentered) << "close() ran the host's loop from inside its callback";
    EXPECT_TRUE(el.is_closed());
    EXPECT_TRUE(cancelled);
    EXPECT_EQ(el.stats().leaked_io, 0u);
  }
  EXPECT_EQ(uv_loop_close(&host), 0) << "a handle was left on the host's loop";
  ::close(p[0]);
  ::close(p[1]);
}
