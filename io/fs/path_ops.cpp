// eddy::fs's operations on paths: stat, exists, rename, remove, create_directory.
// Each is one native op on io_uring (STATX, RENAMEAT, UNLINKAT, MKDIRAT) or one
// trip to the blocking pool (fs_op.cpp).
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

#include <eddy/io/fs.hpp>

#include "io/fs/fs_op.hpp"

namespace eddy::fs {

using detail::io_op;
using detail::op_code;
using detail::op_kind;

namespace {

// statx(path) as a raw result: 0 or -errno.
task<int> statx_path(const std::string& path, bool follow, struct statx* sx) {
  io_op op;
  op.code = op_code::statx;
  op.fd = AT_FDCWD;
  op.buf = const_cast<char*>(path.c_str());
  op.aux = sx;
  op.flags = follow ? 0u : static_cast<unsigned>(AT_SYMLINK_NOFOLLOW);
  op.len = STATX_BASIC_STATS;
  co_return co_await detail::perform(op, op_kind::stat, "eddy::fs::stat");
}

task<int> unlink_path(const std::string& path, unsigned flags) {
  io_op op;
  op.code = op_code::unlinkat;
  op.fd = AT_FDCWD;
  op.buf = const_cast<char*>(path.c_str());
  op.flags = flags;
  co_return co_await detail::perform(op, op_kind::remove, "eddy::fs::remove");
}

}  // namespace

task<file_stat> stat(std::string path, bool follow) {
  detail::check_path(path, "eddy::fs::stat");
  struct statx sx {};
  const int r = co_await statx_path(path, follow, &sx);
  if (r < 0) detail::fail(-r, "eddy::fs::stat", path);
  co_return detail::to_file_stat(sx);
}

task<bool> exists(std::string path) {
  detail::check_path(path, "eddy::fs::exists");
  struct statx sx {};
  const int r = co_await statx_path(path, true, &sx);
  if (r == -ENOENT || r == -ENOTDIR) co_return false;
  if (r < 0) detail::fail(-r, "eddy::fs::exists", path);
  co_return true;
}

task<void> rename(std::string from, std::string to) {
  detail::check_path(from, "eddy::fs::rename");
  detail::check_path(to, "eddy::fs::rename");
  io_op op;
  op.code = op_code::renameat;
  op.fd = AT_FDCWD;
  op.buf = from.data();
  op.aux_fd = AT_FDCWD;
  op.aux = to.data();
  const int r = co_await detail::perform(op, op_kind::rename, "eddy::fs::rename");
  if (r < 0) detail::fail(-r, "eddy::fs::rename", from + " -> " + to);
}

task<void> remove(std::string path) {
  detail::check_path(path, "eddy::fs::remove");
  int r = co_await unlink_path(path, 0);
  // unlink of a directory is EISDIR on Linux (EPERM by POSIX): then rmdir.
  if (r == -EISDIR || r == -EPERM) {
    const int rd = co_await unlink_path(path, AT_REMOVEDIR);
    if (rd != -ENOTDIR) r = rd;
  }
  if (r < 0) detail::fail(-r, "eddy::fs::remove", path);
}

task<bool> create_directory(std::string path, unsigned mode) {
  detail::check_path(path, "eddy::fs::create_directory");
  if (mode > 07777)
    throw std::invalid_argument("eddy::fs::create_directory: mode over 07777 (" +
                                std::to_string(mode) + ")");
  io_op op;
  op.code = op_code::mkdirat;
  op.fd = AT_FDCWD;
  op.buf = path.data();
  op.len = mode;
  const int r = co_await detail::perform(op, op_kind::mkdir, "eddy::fs::create_directory");
  if (r == -EEXIST) {
    struct statx sx {};
    if (co_await statx_path(path, true, &sx) == 0 && S_ISDIR(sx.stx_mode)) co_return false;
  }
  if (r < 0) detail::fail(-r, "eddy::fs::create_directory", path);
  co_return true;
}

}  // namespace eddy::fs
