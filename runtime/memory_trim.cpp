// See memory_trim.hpp.
#include "runtime/memory_trim.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <eddy/runtime/detail/frame_allocator.hpp>

namespace eddy::detail {

void release_idle_memory() noexcept {
  // Enough blocks per class for the next few hundred tasks without a malloc.
  frame_cache_trim(256);
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}

}  // namespace eddy::detail
