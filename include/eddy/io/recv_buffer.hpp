// eddy::recv_buffer: received bytes in a buffer lent by the loop.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

namespace eddy {

/// Bytes returned by `tcp_stream::receive()` / `unix_stream::receive()`, in a
/// buffer the loop lends: on io_uring (part of) a provided-buffer ring slot the
/// kernel filled (no copy), on epoll and libuv a pooled block. One receive holds
/// as much as had arrived, up to `loop_options::recv_limit` (256 KiB by default). The buffer goes back when this object
/// is destroyed or `reset()`: hold it only as long as you need the bytes, since the
/// ring is shared by every connection of the loop. An empty recv_buffer from
/// receive() means end of stream.
///
/// **Thread safety:** a move-only value; destroy it on its loop's thread, before
/// the loop is closed.
/// **Cancel safety:** n/a (not awaitable).
///
/// ```cpp
/// for (;;) {
///   eddy::recv_buffer b = co_await s.receive();
///   if (b.empty()) break;               // EOF
///   co_await s.write_all(b.data());     // echo, then the buffer goes back
/// }
/// ```
class recv_buffer {
 public:
  using release_fn = void (*)(void* owner, std::byte* data, unsigned id) noexcept;

  recv_buffer() noexcept = default;
  recv_buffer(std::byte* data, std::size_t size, release_fn release, void* owner,
              unsigned id) noexcept
      : base_(data), data_(data), size_(size), release_(release), owner_(owner), id_(id) {}
  recv_buffer(recv_buffer&& o) noexcept
      : base_(o.base_),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        release_(std::exchange(o.release_, nullptr)),
        owner_(o.owner_),
        id_(o.id_) {}
  recv_buffer& operator=(recv_buffer&& o) noexcept {
    if (this != &o) {
      reset();
      base_ = o.base_;
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      release_ = std::exchange(o.release_, nullptr);
      owner_ = o.owner_;
      id_ = o.id_;
    }
    return *this;
  }
  ~recv_buffer() { reset(); }

  std::span<const std::byte> data() const noexcept { return {data_, size_}; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// Drops the first `n` bytes (n ≤ size()); the buffer is still held.
  void consume(std::size_t n) noexcept {
    n = n > size_ ? size_ : n;
    data_ += n;
    size_ -= n;
  }
  /// Gives the buffer back now.
  void reset() noexcept {
    if (release_ != nullptr) std::exchange(release_, nullptr)(owner_, base_, id_);
    data_ = nullptr;
    size_ = 0;
  }

 private:
  std::byte* base_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  release_fn release_ = nullptr;
  void* owner_ = nullptr;
  unsigned id_ = 0;
};

}  // namespace eddy
