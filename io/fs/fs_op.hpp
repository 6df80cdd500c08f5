// What every eddy::fs operation goes through (io/fs/fs_op.cpp): one io_op that
// describes the call, run either by the loop's backend (io_uring's native ops)
// or on the blocking pool (epoll, libuv, and io_uring ops that measured faster
// there; docs/fs.md). Errors come back as -errno and are turned into a
// std::system_error naming the operation and the path.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <string_view>

#include <eddy/io/detail/io_op.hpp>
#include <eddy/io/fs.hpp>
#include <eddy/runtime/detail/op_awaiter.hpp>
#include <eddy/runtime/task.hpp>

namespace eddy::fs::detail {

using eddy::detail::io_op;
using eddy::detail::op_code;

/// The operations that have a route of their own (docs/fs.md's table).
enum class op_kind : std::uint8_t { open, read, write, stat, sync, rename, remove, mkdir, close };

/// True if `k` goes to the running loop's backend rather than the blocking pool.
bool native(op_kind k);

/// Runs `op` (its fields set, `complete` unused) by the route of `k`; returns the
/// raw result (bytes, fd or -errno). read/write ops on the pool are whole: they
/// loop until the buffer is done or the file ends, in one trip to the pool.
task<int> perform(io_op op, op_kind k, const char* what);

/// The native route alone, as an awaiter (no coroutine frame of its own): the
/// hot path of read_at/write_at. Raw result; -EOPNOTSUPP if the backend refuses.
eddy::detail::raw_op_awaiter native_op(const io_op& op, const char* what);
/// The pool route alone.
task<int> pool_op(io_op op);

/// The system call behind `op`, made on the calling thread (a pool worker).
int run_blocking(io_op& op) noexcept;

/// Throws std::system_error(err) with "<what> <path>" as its message.
[[noreturn]] void fail(int err, const char* what, std::string_view path);
/// Throws std::invalid_argument unless `path` is usable (not empty, ≤ PATH_MAX, no NUL).
void check_path(std::string_view path, const char* what);

file_stat to_file_stat(const struct statx& sx) noexcept;

}  // namespace eddy::fs::detail
