#include "file_cache.hpp"

#include "response.hpp"

namespace http {

namespace fs = eddy::fs;

namespace {
std::int64_t now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

eddy::task<std::shared_ptr<open_file>> file_cache::open(std::string rel, int root_fd) {
  auto of = std::make_shared<open_file>();
  of->name = rel.empty() ? std::string(".") : std::move(rel);
  for (int attempt = 0;; ++attempt) {
    int err = 0;
    try {
      of->f = co_await fs::file::open(of->name, fs::open_flags::read, {.root_fd = root_fd});
      of->st = co_await of->f.stat();
    } catch (const std::system_error& e) {
      err = e.code().value();
      // Not there, not reachable, or (EXDEV, ELOOP) a symlink leading out.
      if (err != ENOENT && err != ENOTDIR && err != EACCES && err != EXDEV && err != ELOOP &&
          err != ENAMETOOLONG)
        throw;
    }
    if (err != 0) {
      if (of->f) co_await of->f.close();
      co_return nullptr;
    }
    if (of->st.kind == fs::file_kind::directory && attempt == 0) {
      co_await of->f.close();
      of->name = of->name == "." ? std::string("index.html") : of->name + "/index.html";
      continue;
    }
    break;
  }
  if (of->st.kind != fs::file_kind::regular) {
    co_await of->f.close();
    co_return nullptr;
  }
  of->last_modified = http_date(static_cast<std::time_t>(of->st.mtime_ns / 1'000'000'000));
  of->expires_ms = now_ms() + ttl_.count();
  co_return of;
}

eddy::task<std::shared_ptr<open_file>> file_cache::get(std::string rel, int root_fd) {
  if (enabled()) {
    if (auto it = map_.find(rel); it != map_.end()) {
      if (it->second->expires_ms > now_ms()) co_return it->second;
      map_.erase(it);  // closed when its last user is done
    }
  }
  std::string key = rel;
  std::shared_ptr<open_file> of = co_await open(std::move(rel), root_fd);
  if (of && enabled()) {
    if (map_.size() >= capacity_) {
      const std::int64_t now = now_ms();
      std::erase_if(map_, [now](const auto& kv) { return kv.second->expires_ms <= now; });
      if (map_.size() >= capacity_) map_.clear();
    }
    map_[std::move(key)] = of;
  }
  co_return of;
}

eddy::task<void> file_cache::put(std::shared_ptr<open_file> f) {
  // Neither the cache nor another request holds it: close it here, awaited,
  // rather than in a destructor on the loop thread.
  if (f && f.use_count() == 1) co_await f->f.close();
}

}  // namespace http
