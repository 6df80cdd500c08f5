// What tcp_stream and unix_stream share: a connected, non-blocking, close-on-exec
// byte-stream socket and its awaitable operations. Installed, not API: use the
// public types (tcp.hpp, unix.hpp), which bring each member in with a
// using-declaration documented there.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <eddy/io/address.hpp>
#include <eddy/io/fd.hpp>
#include <eddy/io/read_errors.hpp>
#include <eddy/io/recv_buffer.hpp>
#include <eddy/runtime/task.hpp>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace eddy::detail {

/// Creates a non-blocking, close-on-exec socket; throws std::system_error.
unique_fd open_socket(int family, int type, int protocol = 0);
/// Awaitable connect on a fresh non-blocking socket; throws std::system_error
/// naming `addr`.
task<void> connect_socket(int fd, socket_address addr);
socket_address local_address_of(int fd, const char* what);
socket_address peer_address_of(int fd, const char* what);
void set_int_option(int fd, int level, int name, int value, const char* what);
int get_int_option(int fd, int level, int name, const char* what);

struct receiver_state;  // io/net/receiver.cpp
void receiver_retain(receiver_state* s) noexcept;
void receiver_release(receiver_state* s) noexcept;

/// An owning reference to a stream's receiver state. The count lives in the state
/// (no control block beside it, no weak count): an idle connection's receiver is
/// one allocation. Counted atomically, as a shared_ptr was: the socket and the op
/// in flight may let go on different threads.
///
/// **Thread safety:** as a shared_ptr: copies held on different threads may be
/// copied and destroyed concurrently; one reference object is not shared unguarded.
/// **Cancel safety:** not awaitable; nothing to cancel.
class receiver_ref {
 public:
  receiver_ref() noexcept = default;
  /// Adopts one reference already counted for `p`.
  explicit receiver_ref(receiver_state* p) noexcept : p_(p) {}
  receiver_ref(const receiver_ref& o) noexcept : p_(o.p_) {
    if (p_ != nullptr) receiver_retain(p_);
  }
  receiver_ref(receiver_ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  receiver_ref& operator=(receiver_ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~receiver_ref() {
    if (p_ != nullptr) receiver_release(p_);
  }
  void reset() noexcept { receiver_ref().swap(*this); }
  void swap(receiver_ref& o) noexcept { std::swap(p_, o.p_); }
  receiver_state* get() const noexcept { return p_; }
  receiver_state* operator->() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  bool operator==(std::nullptr_t) const noexcept { return p_ == nullptr; }

 private:
  receiver_state* p_ = nullptr;
};

class stream_socket {
 public:
  stream_socket() noexcept = default;
  explicit stream_socket(unique_fd fd) noexcept : fd_(std::move(fd)) {}
  stream_socket(stream_socket&&) noexcept = default;
  stream_socket& operator=(stream_socket&& o) noexcept;
  ~stream_socket();

  /// Receives up to `buf.size()` bytes; 0 is end of stream. Cancel-safe. Throws
  /// std::logic_error once receive() has been used on this socket on io_uring
  /// (its multishot receive owns the socket's incoming bytes).
  size_awaiter read_some(std::span<std::byte> buf) const {
    if (rx_) mixed_reads();
    return size_awaiter(loop::current(), "eddy: recv", op_code::recv, fd_.get(), buf.data(),
                        clamp_len(buf.size()));
  }
  /// Fills `buf` with receives straight into it. Throws incomplete_read_error at
  /// end of stream (its `partial` holds what arrived). Not cancel-safe: a
  /// cancelled read_exact has consumed the bytes already placed in `buf`.
  task<void> read_exact(std::span<std::byte> buf) const;
  /// Appends everything up to end of stream to `out` (which must outlive the
  /// call); returns the count. Throws stream_limit_error once more than `max`
  /// bytes came (those stay in `out`). Not cancel-safe, as read_exact.
  task<std::size_t> read_to_end(std::vector<std::byte>& out,
                                std::size_t max = std::size_t{1} << 30) const;
  /// Receives the next bytes into a buffer lent by the loop (see recv_buffer);
  /// empty at end of stream. On io_uring a multishot recv with the provided buffer
  /// ring stays armed across calls, so a waiting socket holds no buffer and a busy
  /// one costs no SQE per receive; on epoll, recv into a pooled block once the
  /// socket is readable. Cancel-safe: bytes received while nobody waits stay
  /// queued for the next call.
  task<recv_buffer> receive();
  /// The next received bytes if they are already here (queued by receive()'s
  /// multishot read), without waiting or a system call; an empty buffer when
  /// nothing is queued. End of stream and errors are left for receive() to report.
  recv_buffer try_receive() noexcept;
  /// Sends up to `buf.size()` bytes (MSG_NOSIGNAL: never SIGPIPE); returns the
  /// count sent. Cancel-safe (sent nothing, or returns what it sent).
  size_awaiter write_some(std::span<const std::byte> buf) const {
    return size_awaiter(loop::current(), "eddy: send", op_code::send, fd_.get(),
                        const_cast<std::byte*>(buf.data()), clamp_len(buf.size()));
  }
  /// Sends all of `buf`. Not cancel-safe (an unknown prefix may have been sent).
  task<void> write_all(std::span<const std::byte> buf) const;
  /// Sends all of `text` (a std::string, a literal, a string_view): the same as
  /// the byte-span form. The characters must stay alive until the write is done,
  /// which `co_await s.write_all(str)` guarantees. Not cancel-safe.
  task<void> write_all(std::string_view text) const {
    return write_all(std::as_bytes(std::span(text.data(), text.size())));
  }
  /// One sendmsg of up to 1024 buffers (IOV_MAX); returns the bytes sent.
  task<std::size_t> write_vectored(std::span<const std::span<const std::byte>> bufs) const;
  /// Sends every byte of every buffer, in order, with as few sendmsg as the kernel
  /// allows. Not cancel-safe.
  task<void> write_all(std::span<const std::span<const std::byte>> bufs) const;
  /// Sends `count` bytes of the file `file_fd` from `offset` with sendfile(2):
  /// the kernel copies from the page cache, never through user space. Returns the
  /// bytes sent: `count`, or fewer if the file ends first. The file's own position
  /// is not used or moved. Not cancel-safe (an unknown prefix was sent).
  task<std::size_t> send_file(int file_fd, std::uint64_t offset, std::size_t count) const;
  /// shutdown(SHUT_WR): the peer reads end of stream; reading here goes on.
  void shutdown_write() const;
  /// Closes the socket, first cancelling operations in flight on it (they resume
  /// with cancelled_error). Closing a closed or empty socket does nothing.
  task<void> close();

  socket_address local_address() const;
  socket_address peer_address() const;
  int fd() const noexcept { return fd_.get(); }
  /// True once receive() has been used: its receiver owns the socket's incoming
  /// bytes (some may be queued), so nothing else may read the fd (eddy::relay).
  bool receiving() const noexcept { return rx_ != nullptr; }
  explicit operator bool() const noexcept { return static_cast<bool>(fd_); }
  /// receive() hands over at most `n` bytes per call where the backend reads for
  /// it (epoll, libuv, io_uring without a buffer ring); io_uring's ring buffers
  /// hand over up to their size. Clamped to 16 KiB..the loop's recv_limit; 0 =
  /// recv_limit. Takes effect from the next arming of the receive.
  void set_receive_limit(std::size_t n) noexcept {
    rx_limit_ = static_cast<std::uint32_t>(n > (1u << 30) ? (1u << 30) : n);
  }
  /// Gives up ownership of the fd (for eddy::stream or a foreign library).
  /// Throws std::logic_error after receive() on io_uring (bytes may be queued).
  unique_fd release() {
    if (rx_) mixed_reads();
    return std::move(fd_);
  }

 protected:
  [[noreturn]] static void mixed_reads();
  void drop_receiver() noexcept;

  unique_fd fd_;
  receiver_ref rx_;
  std::uint32_t rx_size_ = 0;   // receive()'s read size where it does plain recvs
  std::uint32_t rx_limit_ = 0;  // set_receive_limit; 0 = the loop's recv_limit
};

struct listener_state;  // io/net/listener.cpp

/// An accepted connection and the peer address accept4 reported.
struct accepted_fd {
  unique_fd fd;
  socket_address peer;
};

/// A listening socket's accept machinery: multishot accept where the backend has
/// it, plain accept otherwise; EMFILE/ENFILE handled without spinning.
class listener_core {
 public:
  listener_core() noexcept;
  listener_core(unique_fd fd, bool multishot);
  listener_core(listener_core&&) noexcept;
  listener_core& operator=(listener_core&&) noexcept;
  ~listener_core();

  task<unique_fd> accept_fd();
  /// accept_fd with the peer's address, from the accept itself where the backend
  /// can (see listener.cpp).
  task<accepted_fd> accept_fd_with_peer();
  task<void> close();
  int fd() const noexcept;
  std::uint64_t shed_connections() const noexcept;

 private:
  std::shared_ptr<listener_state> s_;
};

}  // namespace eddy::detail
