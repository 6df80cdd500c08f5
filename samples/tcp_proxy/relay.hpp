// One proxied connection: bytes copied both ways between a client and its
// upstream until both directions have ended.
#pragma once

#include <chrono>
#include <eddy/io/tcp.hpp>
#include <eddy/runtime/task.hpp>
#include <span>
#ifdef EDDY_SAMPLE_TLS
#include <eddy/io/tls_stream.hpp>
#endif

namespace tcp_proxy {

// One side of a relay: a plain TCP stream, or (built with TLS) a TLS stream over
// one. The relay reads and writes through the functions below, so its copying is
// the same either way; only --splice needs both sides plain.
struct side {
  eddy::tcp_stream tcp;
#ifdef EDDY_SAMPLE_TLS
  eddy::tls_stream tls{};
#endif
  bool is_tls() const noexcept {
#ifdef EDDY_SAMPLE_TLS
    return static_cast<bool>(tls);
#else
    return false;
#endif
  }
};

struct relay_options {
  // No byte moved either way for this long closes both sides; zero: never.
  std::chrono::milliseconds idle_timeout{0};
  // Move bytes with splice(2) through a pipe instead of copying through user space.
  bool splice = false;
};

enum class relay_end {
  finished,  // both sides sent EOF and every byte was delivered
  idle,      // closed by the idle timeout
  failed,    // a side reset, or a write failed: both closed
};

// Relays until the end, then closes both streams. Each direction runs on its own:
// EOF from one side becomes shutdown_write() on the other while the opposite
// direction keeps flowing. At most one chunk per direction is in our hands at a
// time (a recv_buffer, or a 64 KiB pipe with --splice), so a slow reader on one
// side stops us reading from the other rather than growing memory.
//
// Cancel safety: cancelling closes both sides at once (used for the shutdown
// grace period); nothing leaks.
eddy::task<relay_end> relay(side client, side upstream, relay_options opts);

}  // namespace tcp_proxy
