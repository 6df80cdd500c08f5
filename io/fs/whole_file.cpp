// Whole-file helpers: read_file, write_file, copy, read_directory. read_file and
// write_file are built from file's own ops (so they take each op's route);
// copy_file_range and getdents have no io_uring op, so copy and read_directory
// are one trip to the blocking pool on every backend.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include <eddy/io/fs.hpp>
#include <eddy/sched/offload.hpp>

#include "io/fs/fs_op.hpp"

namespace eddy::fs {

task<std::string> read_file(std::string path, std::size_t max_size) {
  file f = co_await file::open(path);
  const std::uint64_t size = co_await f.size();
  if (size > max_size)
    throw std::length_error("eddy::fs::read_file " + path + ": " + std::to_string(size) +
                            " bytes, over the limit of " + std::to_string(max_size));
  std::string out;
  // Files that report size 0 (procfs, sysfs) are read until EOF in 64 KiB steps.
  out.resize(size != 0 ? static_cast<std::size_t>(size) : 65536);
  std::size_t have = 0;
  for (;;) {
    auto dst = std::as_writable_bytes(std::span(out.data() + have, out.size() - have));
    const std::size_t n = co_await f.read_at(dst, have);
    have += n;
    if (have < out.size()) break;  // read_at is short only at end of file
    if (out.size() >= max_size) {
      // Full to the limit: one more byte means the file grew past it.
      std::byte probe[1];
      if (co_await f.read_at(probe, have) != 0)
        throw std::length_error("eddy::fs::read_file " + path + ": over the limit of " +
                                std::to_string(max_size) + " bytes");
      break;
    }
    out.resize(std::min(out.size() * 2, max_size));
  }
  out.resize(have);
  co_await f.close();
  co_return out;
}

task<void> write_file(std::string path, std::span<const std::byte> data) {
  file f = co_await file::open(path, open_flags::write | open_flags::create | open_flags::truncate);
  co_await f.write_at(data, 0);
  co_await f.close();
}

task<void> write_file(std::string path, std::string_view text) {
  return write_file(std::move(path), std::as_bytes(std::span(text.data(), text.size())));
}

namespace {

struct copy_result {
  std::uint64_t bytes = 0;
  int err = 0;
  const char* step = "";
};

copy_result copy_blocking(const char* from, const char* to) noexcept {
  copy_result res;
  const int in = ::open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0) return {0, errno, "open source"};
  struct stat st {};
  if (::fstat(in, &st) != 0) {
    res = {0, errno, "stat source"};
    ::close(in);
    return res;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(in);
    return {0, S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "source is not a regular file"};
  }
  const int out = ::open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) {
    res = {0, errno, "open destination"};
    ::close(in);
    return res;
  }
  bool plain = false;
  static thread_local char buf[128 * 1024];
  for (;;) {
    ssize_t n;
    if (!plain) {
      n = ::copy_file_range(in, nullptr, out, nullptr, std::size_t{1} << 30, 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                    errno == EOPNOTSUPP) && res.bytes == 0) {
        plain = true;  // the kernel or filesystem refuses: copy by hand
        continue;
      }
    } else {
      n = ::read(in, buf, sizeof buf);
      if (n > 0) {
        for (ssize_t w = 0; w < n;) {
          const ssize_t m = ::write(out, buf + w, static_cast<std::size_t>(n - w));
          if (m < 0) {
            if (errno == EINTR) continue;
            res.err = errno;
            res.step = "write destination";
            break;
          }
          w += m;
        }
        if (res.err) break;
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      res.err = errno;
      res.step = plain ? "read source" : "copy_file_range";
      break;
    }
    if (n == 0) break;
    res.bytes += static_cast<std::uint64_t>(n);
  }
  if (::close(out) != 0 && res.err == 0) res = {res.bytes, errno, "close destination"};
  ::close(in);
  return res;
}

}  // namespace

task<std::uint64_t> copy(std::string from, std::string to) {
  detail::check_path(from, "eddy::fs::copy");
  detail::check_path(to, "eddy::fs::copy");
  const copy_result r = co_await eddy::to_thread(
      [](const char* a, const char* b) noexcept { return copy_blocking(a, b); }, from.c_str(),
      to.c_str());
  if (r.err != 0)
    detail::fail(r.err, "eddy::fs::copy", from + " -> " + to + " (" + r.step + ")");
  co_return r.bytes;
}

namespace {

struct listing {
  std::vector<directory_entry> entries;
  int err = 0;
  bool too_many = false;
};

listing list_blocking(const char* path, std::size_t max_entries) noexcept {
  listing out;
  DIR* d = ::opendir(path);
  if (d == nullptr) {
    out.err = errno;
    return out;
  }
  try {
    for (;;) {
      errno = 0;
      dirent* e = ::readdir(d);
      if (e == nullptr) {
        out.err = errno;
        break;
      }
      if (e->d_name[0] == '.' &&
          (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
        continue;
      if (out.entries.size() == max_entries) {
        out.too_many = true;
        break;
      }
      file_kind k = file_kind::other;
      if (e->d_type == DT_REG) k = file_kind::regular;
      else if (e->d_type == DT_DIR) k = file_kind::directory;
      else if (e->d_type == DT_LNK) k = file_kind::symlink;
      out.entries.push_back({e->d_name, k});
    }
  } catch (const std::bad_alloc&) {
    out.err = ENOMEM;
  }
  ::closedir(d);
  return out;
}

}  // namespace

task<std::vector<directory_entry>> read_directory(std::string path, std::size_t max_entries) {
  detail::check_path(path, "eddy::fs::read_directory");
  listing l = co_await eddy::to_thread(
      [](const char* p, std::size_t m) noexcept { return list_blocking(p, m); }, path.c_str(),
      max_entries);
  if (l.err != 0) detail::fail(l.err, "eddy::fs::read_directory", path);
  if (l.too_many)
    throw std::length_error("eddy::fs::read_directory " + path + ": more than " +
                            std::to_string(max_entries) + " entries");
  co_return std::move(l.entries);
}

}  // namespace eddy::fs
