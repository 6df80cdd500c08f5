// Small awaitable helpers shared by subprocess, signal_set and process_pool, on top
// of eddy/io/fd.hpp. Results are `int`s (bytes or -errno) rather than exceptions:
// EOF, EPIPE and a dead helper are ordinary outcomes here, not errors.
#pragma once

#include <cstddef>
#include <eddy/runtime/task.hpp>
#include <vector>

namespace eddy::detail {

/// One read: bytes (0 = EOF) or -errno. Cancel-safe.
task<int> async_read(int fd, void* buf, std::size_t len);
/// Writes everything to a non-blocking fd (eddy::write_all): 0, or -errno (EPIPE
/// when the reader is gone: the loop ignores SIGPIPE, see runtime/loop.cpp).
task<int> async_write_all(int fd, const void* buf, std::size_t len);
/// Waits until fd is readable (or has an error / hangup). Cancel-safe.
task<void> async_readable(int fd);
/// Waits until fd is writable (or has an error / hangup). Cancel-safe.
task<void> async_writable(int fd);
/// Runs the tasks concurrently on the current loop and returns their results in
/// order. If one throws or this task is cancelled, the others are cancelled, and
/// all are finished before this returns or rethrows: none outlives its arguments.
task<std::vector<int>> run_all(std::vector<task<int>> jobs);

}  // namespace eddy::detail
