// Open files and their stat, kept for a short time (h2o's file cache, nginx's
// open_file_cache): a hot file costs no open, statx or close per request, only
// its read. An entry is used for at most `ttl` after it was opened, so a file
// changed on disk is seen within that time (a replaced file: the old content is
// served until then, as with nginx's open_file_cache_valid). ttl 0 turns the cache
// off: every request opens, stats and closes.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include <eddy/eddy.hpp>

namespace http {

struct open_file {
  eddy::fs::file f;
  eddy::fs::file_stat st;
  std::string name;           // relative to the root, after index.html was added
  std::string last_modified;  // HTTP date of st.mtime_ns
  std::int64_t expires_ms = 0;
};

class file_cache {
 public:
  file_cache(std::chrono::milliseconds ttl, std::size_t capacity) : ttl_(ttl), capacity_(capacity) {}
  file_cache(const file_cache&) = delete;
  file_cache& operator=(const file_cache&) = delete;

  /// The regular file `rel` names under `root_fd` (a directory: its index.html),
  /// or nullptr if there is none to serve (missing, not regular, outside the
  /// root: openat2 refuses). Throws only for errors other than those.
  eddy::task<std::shared_ptr<open_file>> get(std::string rel, int root_fd);
  /// Gives back what get() returned; closes it (awaited, off the loop thread on
  /// epoll and libuv) unless the cache keeps it.
  eddy::task<void> put(std::shared_ptr<open_file> f);
  bool enabled() const noexcept { return ttl_.count() > 0; }

 private:
  eddy::task<std::shared_ptr<open_file>> open(std::string rel, int root_fd);
  std::chrono::milliseconds ttl_;
  std::size_t capacity_;
  std::unordered_map<std::string, std::shared_ptr<open_file>> map_;
};

}  // namespace http
