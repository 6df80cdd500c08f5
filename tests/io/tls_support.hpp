// Helpers for the TLS tests: contexts over the test certificates
// (support/tls_certs.hpp), a TLS echo server, and checks of tls_error.
#pragma once

#include <gtest/gtest.h>

#include <eddy/eddy.hpp>
#include <eddy/io/tls.hpp>
#include <string>
#include <vector>

#include "io/net_support.hpp"
#include "support/tls_certs.hpp"

namespace eddy_test {

inline const tls_certs& certs() { return tls_certs::get(); }

inline eddy::tls_context server_context(eddy::tls_server_options o = {}) {
  if (o.cert_file.empty()) {
    o.cert_file = certs().server.cert;
    o.key_file = certs().server.key;
  }
  return eddy::tls_context::server(o);
}

inline eddy::tls_context client_context(eddy::tls_client_options o = {}) {
  if (o.ca_file.empty() && o.verify) o.ca_file = certs().ca;
  return eddy::tls_context::client(o);
}

// One context each for the common case, made once: tests pass these lvalues
// into `co_await` expressions (a context made by a call inside a co_await
// expression trips a GCC 12 coroutine bug: its temporaries are destroyed early).
inline const eddy::tls_context& default_server() {
  static const eddy::tls_context c = server_context();
  return c;
}
inline const eddy::tls_context& default_client() {
  static const eddy::tls_context c = client_context();
  return c;
}

// The TLS echo of one connection: echoes until the peer's close_notify, then
// answers with its own and closes. Handshake and I/O errors end it quietly: the
// tests look at the client's side.
inline eddy::task<void> tls_echo_connection(eddy::tcp_stream s, eddy::tls_context ctx) {
  try {
    eddy::tls_stream t = co_await eddy::tls_stream::accept(std::move(s), ctx);
    std::vector<std::byte> buf(64 * 1024);
    for (;;) {
      const std::size_t n = co_await t.read_some(buf);
      if (n == 0) break;
      co_await t.write_all(std::span<const std::byte>(buf.data(), n));
    }
    co_await t.shutdown_write();
    co_await t.close();
  } catch (const std::system_error&) {
  }
}

// Accepts `count` connections, each echoed in its own task; waits for all of them.
inline eddy::task<void> tls_echo_server(eddy::tcp_listener* l, eddy::tls_context ctx, std::size_t count) {
  eddy::task_group g;
  for (std::size_t i = 0; i < count; ++i) g.spawn(tls_echo_connection(co_await l->accept(), ctx)).detach();
  co_await g.join();
}

inline eddy::task<eddy::tls_stream> tls_connect(eddy::socket_address addr, eddy::tls_context ctx,
                                                std::string name = "localhost") {
  eddy::tcp_stream s = co_await eddy::tcp_stream::connect(addr);
  co_return co_await eddy::tls_stream::connect(std::move(s), ctx, name);
}

// Runs `t`, expecting a tls_error with `code` whose message holds `text`.
template <class T>
eddy::task<void> expect_tls_error(eddy::task<T> t, eddy::tls_errc code, std::string text) {
  try {
    co_await std::move(t);
    ADD_FAILURE() << "no tls_error; expected " << eddy::make_error_code(code).message();
  } catch (const eddy::tls_error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

}  // namespace eddy_test
