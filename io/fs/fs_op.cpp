// The two routes of an eddy::fs operation (see fs_op.hpp) and the choice between
// them. The choice is per operation and per backend: on io_uring every operation
// is native unless set_io_path(pool) says otherwise; on epoll and libuv the
// backend refuses file ops (caps().file_ops is false) and the pool runs them.
// docs/fs.md has the measurements behind the table.
#include "io/fs/fs_op.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <eddy/runtime/detail/op_awaiter.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/sched/offload.hpp>

#include "io/backend.hpp"

namespace eddy::fs {

namespace {
std::atomic<io_path> g_path{io_path::automatic};
}

void set_io_path(io_path p) noexcept { g_path.store(p, std::memory_order_relaxed); }
io_path get_io_path() noexcept { return g_path.load(std::memory_order_relaxed); }

}  // namespace eddy::fs

namespace eddy::fs::detail {

bool native(op_kind k) {
  (void)k;  // every kind is native where the backend has file ops (docs/fs.md)
  if (get_io_path() == io_path::pool) return false;
  return eddy::detail::loop_io(loop::current()).caps().file_ops;
}

namespace {

// One read or write, clamped as the kernel clamps it; whole-buffer loops are the
// caller's (native) or run_blocking's (pool).
constexpr std::size_t max_io = 0x7ffff000;

ssize_t one_rw(const io_op& op, std::byte* p, std::size_t n, std::uint64_t off) noexcept {
  if (n > max_io) n = max_io;
  return op.code == op_code::read ? ::pread(op.fd, p, n, static_cast<off_t>(off))
                                  : ::pwrite(op.fd, p, n, static_cast<off_t>(off));
}

// pread/pwrite until `len` bytes are done or (reads) the file ends.
int whole_rw(io_op& op) noexcept {
  auto* p = static_cast<std::byte*>(op.buf);
  std::size_t done = 0;
  const std::size_t len = op.len;
  while (done < len) {
    const ssize_t r = one_rw(op, p + done, len - done, op.offset + done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return done > 0 ? static_cast<int>(done) : -errno;
    }
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  return static_cast<int>(done);
}

}  // namespace

int run_blocking(io_op& op) noexcept {
  long r = -1;
  switch (op.code) {
    case op_code::read:
    case op_code::write:
      return whole_rw(op);
    case op_code::openat: {
      const auto* how = static_cast<const open_how*>(op.aux);
      r = ::syscall(SYS_openat2, op.fd, static_cast<const char*>(op.buf), op.aux, sizeof(open_how));
      // openat2 is Linux 5.6, and container profiles older than it refuse it with
      // EPERM. Without a resolve flag openat does the same; with one (root_fd)
      // nothing else keeps the path inside the root, so the error stands and
      // file::open says why. A genuine EPERM (O_NOATIME, a sealed or immutable
      // file) comes back the same from openat.
      if (r < 0 && (errno == ENOSYS || errno == EPERM) && how->resolve == 0)
        r = ::openat(op.fd, static_cast<const char*>(op.buf), static_cast<int>(how->flags),
                     static_cast<mode_t>(how->mode));
      break;
    }
    case op_code::statx:
      r = ::statx(op.fd, static_cast<const char*>(op.buf), static_cast<int>(op.flags), op.len,
                  static_cast<struct statx*>(op.aux));
      break;
    case op_code::fsync:
      r = (op.flags & eddy::detail::fsync_datasync) ? ::fdatasync(op.fd) : ::fsync(op.fd);
      break;
    case op_code::renameat:
      r = ::renameat2(op.fd, static_cast<const char*>(op.buf), op.aux_fd,
                      static_cast<const char*>(op.aux), op.flags);
      break;
    case op_code::unlinkat:
      r = ::unlinkat(op.fd, static_cast<const char*>(op.buf), static_cast<int>(op.flags));
      break;
    case op_code::mkdirat:
      r = ::mkdirat(op.fd, static_cast<const char*>(op.buf), static_cast<mode_t>(op.len));
      break;
    case op_code::close:
      // Linux releases the fd even when close fails (EINTR included): never retry.
      r = ::close(op.fd);
      break;
    default:
      return -EINVAL;
  }
  return r < 0 ? -errno : static_cast<int>(r);
}

eddy::detail::raw_op_awaiter native_op(const io_op& op, const char* what) {
  eddy::detail::raw_op_awaiter a(loop::current(), what, op.code, op.fd);
  a.op.buf = op.buf;
  a.op.aux = op.aux;
  a.op.aux_fd = op.aux_fd;
  a.op.len = op.len;
  a.op.flags = op.flags;
  a.op.offset = op.offset;
  a.op.run_async = op.run_async;
  return a;
}

task<int> pool_op(io_op op) {
  // The op lives in this frame, which stays suspended until the job has returned
  // (to_thread never resumes a waiter while its job runs), so the pointers in it
  // stay valid for the worker.
  // blocking_work_class, not a class of its own: a cap of a few threads (libuv's
  // 4) measured 1.3-3x slower here (bench/fs, docs/fs.md), the backlog's hand-offs
  // costing more than the switches they save.
  co_return co_await eddy::to_thread([&op]() noexcept { return run_blocking(op); });
}

task<int> perform(io_op op, op_kind k, const char* what) {
  if (native(k)) {
    const int r = co_await native_op(op, what);
    if (r != -EOPNOTSUPP) co_return r;
  }
  co_return co_await pool_op(op);
}

void fail(int err, const char* what, std::string_view path) {
  std::string msg(what);
  msg += ' ';
  msg += path;
  throw std::system_error(err, std::system_category(), msg);
}

void check_path(std::string_view path, const char* what) {
  if (path.empty()) throw std::invalid_argument(std::string(what) + ": empty path");
  if (path.size() >= PATH_MAX)
    throw std::invalid_argument(std::string(what) + ": path longer than PATH_MAX (" +
                                std::to_string(path.size()) + " bytes)");
  if (path.find('\0') != std::string_view::npos)
    throw std::invalid_argument(std::string(what) + ": path holds a NUL byte");
}

file_stat to_file_stat(const struct statx& sx) noexcept {
  file_stat st;
  st.size = sx.stx_size;
  st.mode = sx.stx_mode;
  switch (sx.stx_mode & S_IFMT) {
    case S_IFREG: st.kind = file_kind::regular; break;
    case S_IFDIR: st.kind = file_kind::directory; break;
    case S_IFLNK: st.kind = file_kind::symlink; break;
    default: st.kind = file_kind::other; break;
  }
  st.mtime_ns = static_cast<std::int64_t>(sx.stx_mtime.tv_sec) * 1'000'000'000 + sx.stx_mtime.tv_nsec;
  st.inode = sx.stx_ino;
  st.device = (static_cast<std::uint64_t>(sx.stx_dev_major) << 32) | sx.stx_dev_minor;
  st.links = sx.stx_nlink;
  return st;
}

}  // namespace eddy::fs::detail
