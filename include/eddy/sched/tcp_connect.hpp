// Connecting by host name: eddy::tcp_connect resolves a name with eddy::resolve (on
// the blocking pool) and connects with tcp_stream::connect, trying each address.
//
// It lives in sched/, not next to tcp_stream in io/, because name resolution runs
// getaddrinfo on the thread pool: io/ stays below sched/ (docs/layers.md).
#pragma once

#include <cstdint>
#include <eddy/io/tcp.hpp>
#include <eddy/runtime/task.hpp>
#include <eddy/sched/dns.hpp>
#include <string>

namespace eddy {

/// Connects to `host`:`port` over TCP, as tokio's `TcpStream::connect("host:port")`
/// and asyncio's `open_connection(host, port)` do. `host` is a numeric IPv4 or IPv6
/// address (connected at once: no lookup, no thread hop) or a name, resolved with
/// eddy::resolve on blocking_pool() under slow_work_class(); the addresses are tried
/// in the order getaddrinfo returns them (IPv6 and IPv4 as the system prefers) until
/// one accepts. `opts.timeout` bounds the whole attempt, lookup included;
/// `opts.nodelay` applies to the stream returned.
///
/// Throws (when awaited) std::invalid_argument for a non-positive timeout or a host
/// resolve() rejects, address_error for an empty host, eddy::resolve_error when the
/// name does not resolve, timeout_error when the time is up, and std::system_error
/// with the last address's error (ECONNREFUSED, ENETUNREACH, ...) when none accepts.
///
/// **Thread safety:** await on a loop thread; the stream belongs to that loop. Any
/// number of connects may run at once (at most 16 lookups run at a time; the others
/// queue).
/// **Cancel safety:** cancel-safe and prompt in the sense of `tcp_stream::connect`:
/// cancelling resumes the task with cancelled_error and leaves nothing open. A
/// lookup already inside getaddrinfo finishes on its thread and its result is
/// dropped (see eddy::resolve).
///
/// ```cpp
/// using namespace std::chrono_literals;
/// eddy::tcp_stream s = co_await eddy::tcp_connect("example.org", 80, {.timeout = 5s});
/// co_await s.write_all(std::as_bytes(std::span("GET / HTTP/1.0\r\n\r\n", 18)));
/// ```
task<tcp_stream> tcp_connect(std::string host, std::uint16_t port, tcp_connect_options opts = {});

}  // namespace eddy
