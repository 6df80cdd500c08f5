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
    if (blocks_[id] == nullptr) {  // given back to the heap by trim()
      try {
        blocks_[id] = new std::byte[block_size];
      } catch (const std::bad_alloc&) {
        return -1;
      }
    }
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

void block_pool::trim(std::size_t keep) noexcept {
  // take() reuses from the back: free the coldest ids, at the front. Their ids
  // stay free; take() allocates again when it reaches one.
  for (std::size_t i = 0; i + keep < free_.size(); ++i) {
    delete[] blocks_[free_[i]];
    blocks_[free_[i]] = nullptr;
  }
}

}  // namespace eddy::detail
