// Slow paths of the per-thread frame allocator (include/eddy/runtime/detail/
// frame_allocator.hpp): first use on a thread registers a thread-exit hook that
// returns the cached blocks to the global heap.
#include <eddy/runtime/detail/frame_allocator.hpp>

namespace eddy::detail {

constinit thread_local frame_cache tls_frame_cache{};

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
frame_cache& local_frame_cache() noexcept { return tls_frame_cache; }
#endif

namespace {

struct cache_releaser {
  ~cache_releaser() {
    frame_cache& fc = tls_frame_cache;
    fc.registered = false;  // blocks freed from now on go straight to the heap
    for (void*& head : fc.heads) {
      while (void* p = head) {
        head = *static_cast<void**>(p);
        ::operator delete(p);
      }
    }
  }
};

void ensure_registered() {
  if (!tls_frame_cache.registered) {
    static thread_local cache_releaser releaser;
    (void)&releaser;
    tls_frame_cache.registered = true;
  }
}

}  // namespace

void* frame_alloc_slow(std::size_t cls) {
  ensure_registered();
  return ::operator new(cls * frame_granule);
}

void frame_free_slow(void* p, std::size_t) noexcept { ::operator delete(p); }

void frame_cache_trim(std::uint32_t keep) noexcept {
  frame_cache& fc = tls_frame_cache;
  for (std::size_t c = 0; c < frame_classes; ++c) {
    while (fc.counts[c] > keep) {
      void* p = fc.heads[c];
      fc.heads[c] = *static_cast<void**>(p);
      --fc.counts[c];
      ::operator delete(p);
    }
  }
}

}  // namespace eddy::detail
