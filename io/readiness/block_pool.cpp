// See block_pool.hpp.
#include "io/readiness/block_pool.hpp"

#include <new>

namespace eddy::detail {

block_pool::~block_pool() {
  for (std::byte* b : blocks_) delete[] b;
}

int block_pool::take() noexcept {
  if (!free_.empty()) {
    const unsigned id = free_.back();
    free_.pop_back();
    return static_cast<int>(id);
  }
  if (blocks_.size() >= max_blocks) return -1;
  try {
    // Room for every id to come back without recycle() allocating.
    free_.reserve(blocks_.size() + 1);
    blocks_.reserve(blocks_.size() + 1);
    blocks_.push_back(new std::byte[block_size]);
  } catch (const std::bad_alloc&) {
    return -1;
  }
  return static_cast<int>(blocks_.size() - 1);
}

}  // namespace eddy::detail
