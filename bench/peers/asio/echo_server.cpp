// Boost.Asio echo server with C++20 coroutines, one coroutine per connection, on one
// io_context thread: the Asio peer of samples/echo_server (bench/compare).
//
//   asio_echo_server [--port PORT]   (127.0.0.1; runs until killed)
//
// Built twice by bench/compare: with Asio's default epoll reactor, and with
// -DBOOST_ASIO_HAS_IO_URING -DBOOST_ASIO_DISABLE_EPOLL for its io_uring service.
// Errors come back as values (as_tuple), not exceptions, so EOF costs no throw.
#include <boost/asio.hpp>
#include <boost/asio/experimental/as_tuple.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

asio::awaitable<void> echo(tcp::socket s) {
  char buf[16384];
  for (;;) {
    auto [rerr, n] = co_await s.async_read_some(asio::buffer(buf), use_tuple);
    if (rerr) co_return;
    auto [werr, m] = co_await asio::async_write(s, asio::buffer(buf, n), use_tuple);
    if (werr) co_return;
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor a) {
  for (;;) {
    auto [err, s] = co_await a.async_accept(use_tuple);
    if (err) continue;
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(a.get_executor(), echo(std::move(s)), asio::detached);
  }
}

int main(int argc, char** argv) {
  unsigned short port = 7000;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--port" && i + 1 < argc) {
      port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: asio_echo_server [--port PORT]\n");
      return 2;
    }
  }
  asio::io_context ioc(1);
  tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), port});
  asio::co_spawn(ioc, accept_loop(std::move(a)), asio::detached);
  std::printf("listening on 127.0.0.1 %u\n", port);
  std::fflush(stdout);
  ioc.run();
}
