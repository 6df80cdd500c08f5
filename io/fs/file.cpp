// eddy::fs::file: open, positioned reads and writes, stat, sync, close. Every call
// is one io_op through fs_op.cpp's perform (a native op or the pool). Reads and
// writes loop so that nothing is silently short: a native READ/WRITE may return
// less than asked (the kernel caps one call at 0x7ffff000 bytes; a signal, a
// filesystem's own limits), the loop carries on from where it stopped.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>

#include <cerrno>
#include <system_error>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include <eddy/io/fd.hpp>
#include <eddy/io/fs.hpp>

#include "io/fs/fs_op.hpp"

namespace eddy::fs {

using detail::io_op;
using detail::op_code;
using detail::op_kind;

namespace {

// One op moves at most this much: fits io_op::len, and a pool worker is never
// held for more than one such chunk.
constexpr std::size_t chunk = std::size_t{1} << 30;

// Reads and writes from this size on are marked run_async: io_uring would
// otherwise copy them inline on the loop thread (a 256 KiB page-cache read is
// tens of microseconds), stalling the loop and keeping the copies on one core.
// bench/fs measured it (docs/fs.md); small ones stay inline, where they are
// cheapest. EDDY_FS_ASYNC_MIN (bytes) overrides it, for benchmarks.
std::size_t async_min() noexcept {
  static const std::size_t v = [] {
    if (const char* e = std::getenv("EDDY_FS_ASYNC_MIN"); e != nullptr && *e != '\0')
      return static_cast<std::size_t>(std::strtoull(e, nullptr, 10));
    return std::size_t{64} * 1024;
  }();
  return v;
}

int open_os_flags(open_flags f) {
  const bool r = has(f, open_flags::read);
  const bool w = has(f, open_flags::write);
  if (!r && !w) throw std::invalid_argument("eddy::fs::file::open: flags need read or write");
  int o = O_CLOEXEC | (r && w ? O_RDWR : w ? O_WRONLY : O_RDONLY);
  if (has(f, open_flags::create)) o |= O_CREAT;
  if (has(f, open_flags::truncate)) o |= O_TRUNC;
  if (has(f, open_flags::append)) o |= O_APPEND;
  if (has(f, open_flags::exclusive)) o |= O_EXCL;
  if (has(f, open_flags::directory)) o |= O_DIRECTORY;
  if (has(f, open_flags::no_follow)) o |= O_NOFOLLOW;
  if (static_cast<unsigned>(f) >= 256)
    throw std::invalid_argument("eddy::fs::file::open: unknown flag bits");
  return o;
}

}  // namespace

file::file(file&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), pos_(o.pos_), path_(std::move(o.path_)) {}

file& file::operator=(file&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) eddy::detail::close_fd_now(loop::current_or_null(), fd_);
    fd_ = std::exchange(o.fd_, -1);
    pos_ = o.pos_;
    path_ = std::move(o.path_);
  }
  return *this;
}

file::~file() {
  if (fd_ >= 0) eddy::detail::close_fd_now(loop::current_or_null(), fd_);
}

int file::release() noexcept { return std::exchange(fd_, -1); }

task<file> file::open(std::string path, open_flags flags, open_options opts) {
  detail::check_path(path, "eddy::fs::file::open");
  if (opts.mode > 07777)
    throw std::invalid_argument("eddy::fs::file::open: mode over 07777 (" +
                                std::to_string(opts.mode) + ")");
  open_how how{};
  how.flags = static_cast<std::uint64_t>(open_os_flags(flags));
  how.mode = has(flags, open_flags::create) ? opts.mode : 0;
  if (opts.root_fd >= 0) how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  io_op op;
  op.code = op_code::openat;
  op.fd = opts.root_fd >= 0 ? opts.root_fd : AT_FDCWD;
  op.buf = path.data();
  op.aux = &how;
  const int r = co_await detail::perform(op, op_kind::open, "eddy::fs::open");
  // root_fd has no fallback (see run_blocking): say what it needs. EPERM may also
  // be the file's own answer (O_NOATIME, an immutable file), hence "may".
  if (r == -ENOSYS && opts.root_fd >= 0)
    throw std::system_error(ENOSYS, std::system_category(),
                            "eddy::fs::open: " + path + ": root_fd needs openat2 (Linux 5.6)");
  if (r == -EPERM && opts.root_fd >= 0)
    throw std::system_error(EPERM, std::system_category(),
                            "eddy::fs::open: " + path +
                                " (root_fd needs openat2, which a seccomp filter may refuse)");
  if (r < 0) detail::fail(-r, "eddy::fs::open", path);
  co_return file(r, std::move(path));
}

task<std::size_t> file::read_at(std::span<std::byte> buf, std::uint64_t offset) const {
  bool native = detail::native(op_kind::read);
  std::size_t done = 0;
  while (done < buf.size()) {
    const std::size_t n = std::min(buf.size() - done, chunk);
    io_op op;
    op.code = op_code::read;
    op.fd = fd_;
    op.buf = buf.data() + done;
    op.len = static_cast<unsigned>(n);
    op.offset = offset + done;
    op.run_async = n >= async_min();
    int r = native ? co_await detail::native_op(op, "eddy::fs::read") : -EOPNOTSUPP;
    if (r == -EOPNOTSUPP) {
      native = false;
      r = co_await detail::pool_op(op);
    }
    if (r < 0) {
      if (r == -EINTR) continue;
      detail::fail(-r, "eddy::fs::read", path_);
    }
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  co_return done;
}

task<std::size_t> file::write_at(std::span<const std::byte> buf, std::uint64_t offset) const {
  bool native = detail::native(op_kind::write);
  std::size_t done = 0;
  while (done < buf.size()) {
    const std::size_t n = std::min(buf.size() - done, chunk);
    io_op op;
    op.code = op_code::write;
    op.fd = fd_;
    op.buf = const_cast<std::byte*>(buf.data() + done);
    op.len = static_cast<unsigned>(n);
    op.offset = offset + done;
    op.run_async = n >= async_min();
    int r = native ? co_await detail::native_op(op, "eddy::fs::write") : -EOPNOTSUPP;
    if (r == -EOPNOTSUPP) {
      native = false;
      r = co_await detail::pool_op(op);
    }
    if (r < 0) {
      if (r == -EINTR) continue;
      detail::fail(-r, "eddy::fs::write", path_);
    }
    // A write that moves nothing and reports no error would loop for ever.
    if (r == 0) detail::fail(EIO, "eddy::fs::write (no progress)", path_);
    done += static_cast<std::size_t>(r);
  }
  co_return done;
}

task<std::size_t> file::read(std::span<std::byte> buf) {
  const std::size_t n = co_await read_at(buf, pos_);
  pos_ += n;
  co_return n;
}

task<std::size_t> file::write(std::span<const std::byte> buf) {
  const std::size_t n = co_await write_at(buf, pos_);
  pos_ += n;
  co_return n;
}

task<file_stat> file::stat() const {
  struct statx sx {};
  io_op op;
  op.code = op_code::statx;
  op.fd = fd_;
  op.buf = const_cast<char*>("");
  op.aux = &sx;
  op.flags = AT_EMPTY_PATH;
  op.len = STATX_BASIC_STATS;
  const int r = co_await detail::perform(op, op_kind::stat, "eddy::fs::stat");
  if (r < 0) detail::fail(-r, "eddy::fs::stat", path_);
  co_return detail::to_file_stat(sx);
}

task<std::uint64_t> file::size() const {
  const file_stat st = co_await stat();
  co_return st.size;
}

namespace {
task<void> sync_fd(int fd, unsigned flags, const char* what, const std::string& path) {
  io_op op;
  op.code = op_code::fsync;
  op.fd = fd;
  op.flags = flags;
  const int r = co_await detail::perform(op, op_kind::sync, what);
  if (r < 0) detail::fail(-r, what, path);
}
}  // namespace

task<void> file::sync() const { return sync_fd(fd_, 0, "eddy::fs::sync", path_); }
task<void> file::datasync() const {
  return sync_fd(fd_, eddy::detail::fsync_datasync, "eddy::fs::datasync", path_);
}

task<void> file::close() {
  if (fd_ < 0) co_return;
  io_op op;
  op.code = op_code::close;
  op.fd = std::exchange(fd_, -1);
  const int r = co_await detail::perform(op, op_kind::close, "eddy::fs::close");
  if (r < 0 && r != -EINTR) detail::fail(-r, "eddy::fs::close", path_);
}

}  // namespace eddy::fs
