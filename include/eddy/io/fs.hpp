// eddy::fs: files and directories from coroutines, never blocking the loop thread.
//
// On io_uring each operation is a native op (OPENAT2, READ, WRITE, STATX, FSYNC,
// RENAMEAT, UNLINKAT, MKDIRAT, CLOSE; no SQPOLL). On epoll and libuv, where a
// regular file is always "ready" and a read would stall the loop, the same
// operation runs on eddy's blocking pool (eddy::to_thread), as libuv's uv_fs_* and
// tokio::fs do. Per operation, the path that measured faster on the backend in use
// is taken (docs/fs.md has the table and the figures); fs::set_io_path overrides it.
//
// Errors are std::system_error whose message names the operation and the path
// ("eddy::fs::open /srv/a.txt: No such file or directory"). Reads and writes are
// never silently short: write_at writes everything, read_at fills the buffer unless
// the file ends first.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <eddy/runtime/task.hpp>

namespace eddy::fs {

/// How a file is opened: combine with `|`. One of read or write is required.
///
/// **Thread safety:** a value. **Cancel safety:** n/a.
///
/// ```cpp
/// auto f = co_await eddy::fs::file::open("log.txt",
///     eddy::fs::open_flags::write | eddy::fs::open_flags::create | eddy::fs::open_flags::append);
/// ```
enum class open_flags : unsigned {
  read = 1,         ///< O_RDONLY (with write: O_RDWR)
  write = 2,        ///< O_WRONLY (with read: O_RDWR)
  create = 4,       ///< O_CREAT, with the mode given to open
  truncate = 8,     ///< O_TRUNC
  append = 16,      ///< O_APPEND: writes go to the end whatever their offset
  exclusive = 32,   ///< O_EXCL: with create, fail with EEXIST if the file exists
  directory = 64,   ///< O_DIRECTORY: fail with ENOTDIR unless it is a directory
  no_follow = 128,  ///< O_NOFOLLOW: fail with ELOOP if the last component is a symlink
};
constexpr open_flags operator|(open_flags a, open_flags b) noexcept {
  return static_cast<open_flags>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr bool has(open_flags set, open_flags f) noexcept {
  return (static_cast<unsigned>(set) & static_cast<unsigned>(f)) != 0;
}

/// What a file is.
enum class file_kind : std::uint8_t { regular, directory, symlink, other };

/// What stat returns (from statx).
///
/// **Thread safety:** a value. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::fs::file_stat st = co_await eddy::fs::stat("data.bin");
/// if (st.kind == eddy::fs::file_kind::regular) std::printf("%llu bytes\n", (unsigned long long)st.size);
/// ```
struct file_stat {
  std::uint64_t size = 0;
  file_kind kind = file_kind::other;
  std::uint32_t mode = 0;  ///< permission bits and file type (st_mode)
  std::int64_t mtime_ns = 0;  ///< last modification, ns since the Unix epoch
  std::uint64_t inode = 0;
  std::uint64_t device = 0;
  std::uint32_t links = 0;
};

/// Which mechanism runs file operations (see the header comment).
enum class io_path : std::uint8_t {
  automatic,  ///< the faster one per operation on the loop's backend (default)
  pool,       ///< always the blocking pool, also on io_uring
};
/// Chooses the mechanism for every loop of the process (benchmarks compare them).
/// **Thread safety:** any thread (an atomic); ops already started keep theirs.
/// **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::fs::set_io_path(eddy::fs::io_path::pool);
/// ```
void set_io_path(io_path p) noexcept;
io_path get_io_path() noexcept;

/// Options for `file::open` beyond the flags.
///
/// **Thread safety:** a value. **Cancel safety:** n/a.
struct open_options {
  /// Permission bits for a file that `create` makes (before the umask); ≤ 07777.
  unsigned mode = 0644;
  /// Resolve the path inside `root_fd` only (openat2's RESOLVE_BENEATH and
  /// RESOLVE_NO_MAGICLINKS): `..` past it, absolute paths and symlinks leading out
  /// fail with EXDEV, so a server never reads outside its root. -1: no root.
  /// Needs openat2 (Linux 5.6): where it is missing or refused (a container
  /// profile older than it answers EPERM) an open with a root fails and says so,
  /// while one without a root falls back to openat.
  int root_fd = -1;
};

/// An open file. Reads and writes take an explicit offset (`read_at`/`write_at`) or
/// use the file's own position (`read`/`write`, which advance it), as tokio::fs and
/// Rust's FileExt do; several `read_at` may be in flight at once on one file.
///
/// **Thread safety:** use a file from one loop at a time; it may move between
/// loops while no operation is in flight.
/// **Cancel safety:** `read_at`/`read` are cancel-safe in the tokio sense: a
/// cancelled read delivers what it read or nothing, and the buffer is never written
/// after the await ends. `write_at`/`write` are not (an unknown prefix may be
/// written). `close` closes the fd whatever happens.
///
/// ```cpp
/// auto f = co_await eddy::fs::file::open("/var/log/syslog");
/// std::vector<std::byte> buf(64 * 1024);
/// std::size_t n = co_await f.read_at(buf, 0);   // < buf.size() only at end of file
/// co_await f.close();
/// ```
class file {
 public:
  file() noexcept = default;
  file(file&& o) noexcept;
  file& operator=(file&& o) noexcept;
  file(const file&) = delete;
  file& operator=(const file&) = delete;
  /// Closes the fd at once if still open (prefer `co_await close()`: it reports
  /// errors and keeps the close off the loop thread on epoll and libuv).
  ~file();

  /// Opens `path` (close-on-exec always). Throws std::invalid_argument for flags
  /// without read or write, a mode over 07777, or a path that is empty, longer than
  /// PATH_MAX or holds a NUL; std::system_error naming the path otherwise.
  static task<file> open(std::string path, open_flags flags = open_flags::read,
                         open_options opts = {});

  /// Reads into `buf` from `offset`; returns the bytes read, fewer than
  /// `buf.size()` only at end of file.
  task<std::size_t> read_at(std::span<std::byte> buf, std::uint64_t offset) const;
  /// Writes all of `buf` at `offset`; returns `buf.size()`.
  task<std::size_t> write_at(std::span<const std::byte> buf, std::uint64_t offset) const;
  /// read_at the file's position, which then advances by the count.
  task<std::size_t> read(std::span<std::byte> buf);
  /// write_at the file's position, which then advances by the count (a file opened
  /// with `append` receives the bytes at its end whatever the position, as pwrite does).
  task<std::size_t> write(std::span<const std::byte> buf);
  /// The position `read` and `write` use.
  std::uint64_t position() const noexcept { return pos_; }
  void seek(std::uint64_t pos) noexcept { pos_ = pos; }

  task<file_stat> stat() const;
  task<std::uint64_t> size() const;
  /// fsync: data and metadata reach the disk.
  task<void> sync() const;
  /// fdatasync: data (and the metadata needed to read it back) reach the disk.
  task<void> datasync() const;
  /// Closes the file; it is empty afterwards. Closing an empty file does nothing.
  task<void> close();

  int fd() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Gives up the fd (the caller closes it).
  int release() noexcept;

 private:
  file(int fd, std::string path) noexcept : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::uint64_t pos_ = 0;
  std::string path_;
};

/// statx of `path`, following symlinks (`follow = false`: the link itself).
/// **Thread safety:** loop thread. **Cancel safety:** cancel-safe.
///
/// ```cpp
/// auto st = co_await eddy::fs::stat("/etc/hostname");
/// ```
task<file_stat> stat(std::string path, bool follow = true);
/// True if `path` exists (false for ENOENT/ENOTDIR; other errors throw).
/// **Thread safety:** loop thread. **Cancel safety:** cancel-safe.
task<bool> exists(std::string path);
/// rename(2) `from` to `to`, replacing `to` atomically if it exists.
/// **Thread safety:** loop thread. **Cancel safety:** done or not done.
///
/// ```cpp
/// co_await eddy::fs::write_file("conf.tmp", text);
/// co_await eddy::fs::rename("conf.tmp", "conf");
/// ```
task<void> rename(std::string from, std::string to);
/// Removes a file, a symlink or an empty directory.
/// **Thread safety:** loop thread. **Cancel safety:** done or not done.
task<void> remove(std::string path);
/// Makes a directory; returns false if a directory is already there (anything else
/// there throws EEXIST). The parent must exist.
/// **Thread safety:** loop thread. **Cancel safety:** done or not done.
///
/// ```cpp
/// co_await eddy::fs::create_directory("out");
/// ```
task<bool> create_directory(std::string path, unsigned mode = 0755);

/// The whole file as bytes in a string. Throws std::length_error (naming the path)
/// if it is larger than `max_size` (default 1 GiB), so a hostile file cannot take
/// the memory.
/// **Thread safety:** loop thread. **Cancel safety:** nothing is kept on cancel.
///
/// ```cpp
/// std::string cfg = co_await eddy::fs::read_file("app.conf");
/// ```
task<std::string> read_file(std::string path, std::size_t max_size = std::size_t{1} << 30);
/// Creates or truncates `path` and writes all of `data` (mode 0644 before umask).
/// **Thread safety:** loop thread; `data` must outlive the await.
/// **Cancel safety:** not cancel-safe (the file may hold a prefix).
task<void> write_file(std::string path, std::span<const std::byte> data);
task<void> write_file(std::string path, std::string_view text);
/// Copies the file `from` to `to` (created or truncated, with `from`'s
/// permissions) with copy_file_range, so the kernel moves the bytes (reflinks on
/// filesystems that share extents); falls back to read/write where the kernel
/// refuses (EXDEV before 5.3, some filesystems). Returns the bytes copied.
/// **Thread safety:** loop thread. **Cancel safety:** not cancel-safe.
///
/// ```cpp
/// std::uint64_t n = co_await eddy::fs::copy("a.bin", "b.bin");
/// ```
task<std::uint64_t> copy(std::string from, std::string to);

/// One entry of a directory listing (not "." or "..").
struct directory_entry {
  std::string name;
  file_kind kind = file_kind::other;  ///< from d_type; `other` if the fs does not say
};
/// The entries of directory `path`, in the order the filesystem returns them.
/// Throws std::length_error past `max_entries` (default 1,000,000).
/// **Thread safety:** loop thread. **Cancel safety:** nothing is kept on cancel.
///
/// ```cpp
/// for (auto& e : co_await eddy::fs::read_directory("."))
///   std::puts(e.name.c_str());
/// ```
task<std::vector<directory_entry>> read_directory(std::string path,
                                                  std::size_t max_entries = 1'000'000);

}  // namespace eddy::fs
