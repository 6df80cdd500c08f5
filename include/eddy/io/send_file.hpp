// Sending part of a file down a stream socket, the kernel moving the bytes
// (sendfile(2)): what a static file server wants. Kept in a file of its own so it
// can be reconciled with the stream layer's own zero-copy sends.
#pragma once

#include <cstdint>

#include <eddy/io/detail/stream_socket.hpp>
#include <eddy/io/fs.hpp>
#include <eddy/runtime/task.hpp>

namespace eddy {

/// Sends `count` bytes of `f` from `offset` on the connected stream socket `s`
/// with sendfile(2): page-cache pages go to the socket without a copy through
/// user space. Waits for room (poll) when the socket's buffer is full, so the
/// loop never blocks on the peer. Returns `count`; throws std::system_error naming
/// the file if the socket fails (EPIPE, ECONNRESET: SIGPIPE is never raised) or
/// if the file ends before `offset + count` (EIO: it shrank while being sent), and
/// std::invalid_argument if `offset + count` overflows.
///
/// The file's pages are read on the loop thread, as nginx's `sendfile on` does:
/// from the page cache that costs a copy into the socket and nothing more; a
/// page-cache miss waits for the disk there.
///
/// **Thread safety:** loop thread only; `s` and `f` must outlive the await.
/// **Cancel safety:** not cancel-safe: an unknown prefix may have been sent.
///
/// ```cpp
/// auto f = co_await eddy::fs::file::open("index.html");
/// co_await eddy::send_file(conn, f, 0, co_await f.size());
/// ```
task<std::uint64_t> send_file(const detail::stream_socket& s, const fs::file& f,
                              std::uint64_t offset, std::uint64_t count);

}  // namespace eddy
