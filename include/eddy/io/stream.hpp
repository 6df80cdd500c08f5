// eddy::stream: asyncio's StreamReader and StreamWriter over any byte-stream fd
// (tcp_stream, unix_stream, a pipe): delimited reads with limits, and buffered
// writes with high and low water marks, so a slow peer cannot grow memory without
// bound.
#pragma once

#include <cstddef>
#include <eddy/io/fd.hpp>
#include <eddy/io/read_errors.hpp>
#include <eddy/io/tcp.hpp>
#include <eddy/io/unix.hpp>
#include <eddy/runtime/task.hpp>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace eddy {

/// Sizes for eddy::stream. The defaults are asyncio's (64 KiB limits, low water a
/// quarter of high water). Checked by the stream's constructor
/// (std::invalid_argument): 1 ≤ low_water ≤ high_water ≤ max_write_buffer, and
/// every size ≤ 1 GiB.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::stream s(std::move(sock), {.read_limit = 8 * 1024, .high_water = 256 * 1024,
///                                  .low_water = 64 * 1024});
/// ```
struct stream_options {
  /// Default limit of read_line / read_until / peek: bytes searched for the
  /// delimiter before stream_limit_error.
  std::size_t read_limit = 64 * 1024;
  /// Largest `read_exact(n)` that returns a new buffer (the span form has none).
  std::size_t max_read_exact = 16 * 1024 * 1024;
  /// Bytes asked of the kernel per receive. On sockets at most the loop's
  /// `loop_options::recv_limit` and at least 16 KiB (smaller reads only cost more
  /// system calls); io_uring's provided buffers may hand over up to their size.
  std::size_t read_chunk = 64 * 1024;
  /// `drain()` waits while more than this is buffered ...
  std::size_t high_water = 64 * 1024;
  /// ... until no more than this is left.
  std::size_t low_water = 16 * 1024;
  /// Hard cap: `write` throws stream_limit_error rather than buffer past it
  /// (a writer that never drains cannot grow without bound).
  std::size_t max_write_buffer = 16 * 1024 * 1024;
};

struct stream_state;  // io/stream.cpp

/// A buffered byte stream with asyncio's StreamReader/StreamWriter semantics.
///
/// Reading: `read_some`, `read_exact`, `read_until`, `read_line`, `peek`. End of
/// stream is a value (0 bytes / an empty line), except where the call promised
/// more (`read_exact`, `read_until` throw incomplete_read_error).
///
/// Writing: `write` appends to the buffer and returns at once; a background
/// writer on the loop sends it. `drain()` is the back-pressure point: it waits,
/// when more than high_water bytes are buffered, until at most low_water are
/// left. `flush()` waits for an empty buffer. A send error (EPIPE, ECONNRESET) is
/// kept and thrown by the next write, drain or flush.
///
/// **Thread safety:** a move-only value; loop thread only. One task may read
/// while another writes.
/// **Cancel safety:** the reads are cancel-safe: bytes are consumed only when a
/// read returns, so a cancelled `read_line` leaves the partial line buffered for
/// the next read (`read_exact(span)` copies only on success too). `drain` and
/// `flush` are cancel-safe (nothing is lost: the data stays buffered and is still
/// sent). `close` is not a cancellation point once the flush is done.
/// Destroying a stream discards unsent bytes and cancels its operations.
///
/// ```cpp
/// eddy::stream s(co_await eddy::tcp_connect("127.0.0.1", 7000));  // sched/tcp_connect.hpp
/// s.write(std::string_view("HELLO\n"));
/// co_await s.drain();
/// std::string line = co_await s.read_line();       // "...\n", or "" at EOF
/// auto hdr = co_await s.read_exact(16);            // std::vector<std::byte>
/// std::string body = co_await s.read_exact_string(len);  // the same, as text
/// co_await s.shutdown_write();                     // flush, then FIN
/// ```
class stream {
 public:
  stream() noexcept;
  explicit stream(tcp_stream s, stream_options opts = {});
  explicit stream(unix_stream s, stream_options opts = {});
  /// Any non-blocking byte-stream fd (a socket or a pipe end).
  explicit stream(unique_fd fd, stream_options opts = {});
  stream(stream&&) noexcept;
  stream& operator=(stream&&) noexcept;
  ~stream();

  // ---- reading ----

  /// Returns buffered bytes at once, else receives once: up to `buf.size()`
  /// bytes, 0 at end of stream.
  task<std::size_t> read_some(std::span<std::byte> buf);
  /// Fills `buf` completely. Throws incomplete_read_error at end of stream.
  task<void> read_exact(std::span<std::byte> buf);
  /// Reads exactly `n` bytes (n ≤ max_read_exact, else stream_limit_error).
  task<std::vector<std::byte>> read_exact(std::size_t n);
  /// read_exact(n) as text: the same bytes in a std::string, the type read_line
  /// and read_until return (for text protocols: an HTTP body of Content-Length
  /// bytes, a fixed-width field). Same limits and errors as read_exact(n).
  task<std::string> read_exact_string(std::size_t n);
  /// Reads up to and including `delim` (non-empty). Throws stream_limit_error if
  /// `limit` bytes (0: read_limit) hold no delimiter, incomplete_read_error at end
  /// of stream before it.
  task<std::string> read_until(std::string delim, std::size_t limit = 0);
  /// Reads a line including its '\n'; at end of stream returns what is left
  /// without '\n' ("" when nothing is). Throws stream_limit_error (with the limit
  /// in the message) for a line longer than `limit` (0: read_limit).
  task<std::string> read_line(std::size_t limit = 0);
  /// Discards bytes up to and including the next '\n' (or to the end of stream)
  /// and returns how many: after read_line's stream_limit_error, skips the rest of
  /// the over-long line without holding it (no limit applies: nothing is kept).
  /// Cancel-safe: what was discarded before a cancellation stays discarded.
  ///
  /// ```cpp
  /// try { line = co_await s.read_line(64); }
  /// catch (const eddy::stream_limit_error&) { co_await s.discard_line(); reply("414"); }
  /// ```
  task<std::size_t> discard_line();
  /// Waits until `n` bytes are buffered (or end of stream) and returns a view of
  /// the buffered bytes without consuming them (valid until the next read).
  /// n ≤ read_limit, else stream_limit_error.
  task<std::span<const std::byte>> peek(std::size_t n);
  /// Whether the peer has closed its side and every byte has been read.
  bool at_eof() const noexcept;

  // ---- writing ----

  /// Appends to the write buffer and returns at once. Throws the kept send error,
  /// or stream_limit_error past max_write_buffer (nothing is appended then).
  void write(std::span<const std::byte> data);
  void write(std::string_view text) { write(std::as_bytes(std::span(text.data(), text.size()))); }
  /// Back-pressure: if more than high_water bytes are buffered, waits until at
  /// most low_water are. Throws the kept send error.
  task<void> drain();
  /// Waits until everything written has been handed to the kernel.
  task<void> flush();
  /// Flushes, then half-closes (shutdown SHUT_WR): the peer reads end of stream.
  task<void> shutdown_write();
  /// Bytes written but not yet handed to the kernel.
  std::size_t write_buffer_size() const noexcept;
  /// Bytes received but not yet read.
  std::size_t read_buffer_size() const noexcept;

  /// Flushes (errors are thrown after the fd is closed), then closes.
  task<void> close();
  /// Closes now: unsent bytes are dropped, operations in flight cancelled.
  void abort() noexcept;
  int fd() const noexcept;
  const stream_options& options() const noexcept;

 private:
  std::shared_ptr<stream_state> s_;
};

}  // namespace eddy
