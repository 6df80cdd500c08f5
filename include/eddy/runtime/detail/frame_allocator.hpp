// Per-thread size-class free lists for coroutine frames and small runtime nodes.
//
// Spawning must not cost a malloc in the steady state (DESIGN.md §2). Blocks are
// carved individually from ::operator new and recycled through a per-thread,
// per-size-class singly linked list. Because every block is its own allocation, a
// block may be freed on a different thread than the one that allocated it (a task
// created on one thread and destroyed on another): it simply joins that thread's
// list. Each list is capped so a burst does not pin memory forever; a thread's
// cached blocks are released when it exits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace eddy::detail {

inline constexpr std::size_t frame_granule = 16;
inline constexpr std::size_t frame_max_small = 1024;
inline constexpr std::size_t frame_classes = frame_max_small / frame_granule + 1;
inline constexpr std::uint32_t frame_cache_cap = 4096;

struct frame_cache {
  void* heads[frame_classes];
  std::uint32_t counts[frame_classes];
  bool registered;
};

// initial-exec: no __tls_get_addr call on the hot path, also from a static libeddy
// built with -fPIC. The cost is that a shared libeddy cannot be dlopen()ed late.
[[gnu::tls_model("initial-exec")]] extern constinit thread_local frame_cache tls_frame_cache;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// GCC 12 with UBSan's null check reports a null `frame_cache&` for this valid
// initial-exec TLS address when the access is inlined into a coroutine's ramp
// function (the checked pointer is computed as 0, the real one is fine). Sanitizer
// builds therefore reach the cache through a call.
frame_cache& local_frame_cache() noexcept;
#else
inline frame_cache& local_frame_cache() noexcept { return tls_frame_cache; }
#endif

void* frame_alloc_slow(std::size_t cls);
void frame_free_slow(void* p, std::size_t cls) noexcept;
/// Frees this thread's cached blocks beyond `keep` per size class (after a burst).
void frame_cache_trim(std::uint32_t keep) noexcept;

inline std::size_t frame_class(std::size_t n) noexcept {
  return (n + frame_granule - 1) / frame_granule;
}

inline void* frame_alloc(std::size_t n) {
  if (n <= frame_max_small) {
    const std::size_t c = frame_class(n);
    frame_cache& fc = local_frame_cache();
    if (void* p = fc.heads[c]) {
      fc.heads[c] = *static_cast<void**>(p);
      --fc.counts[c];
      return p;
    }
    return frame_alloc_slow(c);
  }
  return ::operator new(n);
}

inline void frame_free(void* p, std::size_t n) noexcept {
  if (n <= frame_max_small) {
    const std::size_t c = frame_class(n);
    frame_cache& fc = local_frame_cache();
    if (fc.counts[c] < frame_cache_cap && fc.registered) {
      *static_cast<void**>(p) = fc.heads[c];
      fc.heads[c] = p;
      ++fc.counts[c];
      return;
    }
    frame_free_slow(p, c);
    return;
  }
  ::operator delete(p);
}

/// Allocates and constructs a T from the per-thread pool.
template <class T, class... Args>
T* pool_new(Args&&... args) {
  void* p = frame_alloc(sizeof(T));
  try {
    return ::new (p) T(static_cast<Args&&>(args)...);
  } catch (...) {
    frame_free(p, sizeof(T));
    throw;
  }
}

template <class T>
void pool_delete(T* p) noexcept {
  p->~T();
  frame_free(p, sizeof(T));
}

}  // namespace eddy::detail
