// One connection to a Redis server over eddy's sockets (TCP or Unix, every backend),
// speaking RESP through hiredis's command formatter and reply reader only: hiredis
// never touches the socket, so nothing blocks the loop and the loop's own I/O path
// (io_uring, epoll, libuv) carries the bytes.
//
// Pipelined: send() appends a formatted command to the output buffer and a callback
// to the FIFO of pending replies; one writer task writes whatever accumulated since
// its last write in one call (so a burst of XADDs costs one send), and one reader
// task feeds hiredis's reader and hands each reply to the oldest callback. Redis
// answers a connection's commands in order, so the FIFO is the whole matching.
//
// Failure: EOF, a read or write error, a protocol error or close() fail every
// pending callback with a null reply and the reason, once; the connection is then
// dead for good (the owner opens a new one). The object lives while its reader or
// writer task does, so a callback may drop the owner's last reference.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <deque>
#include <eddy/io/fd.hpp>
#include <eddy/runtime/event.hpp>
#include <eddy/runtime/task.hpp>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redis_endpoint.hpp"

namespace eddy::detail {

struct redis_reply_deleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using redis_reply = std::unique_ptr<redisReply, redis_reply_deleter>;

class redis_connection : public std::enable_shared_from_this<redis_connection> {
 public:
  /// reply is null when the connection failed first; `why` then says how.
  using callback = std::function<void(redis_reply reply, const std::string& why)>;

  /// Connects (within `timeout`), logs in (AUTH) and selects the database. Throws
  /// broker_error naming the server on any failure, with Redis's own message.
  static task<std::shared_ptr<redis_connection>> open(redis_endpoint ep,
                                                      std::chrono::milliseconds timeout);
  ~redis_connection();

  void send(std::span<const std::string_view> args, callback cb);
  void send(std::initializer_list<std::string_view> args, callback cb) {
    send(std::span<const std::string_view>(args.begin(), args.size()), std::move(cb));
  }
  /// One command, awaited. An error reply is returned, not thrown; a failed
  /// connection throws broker_error.
  task<redis_reply> command(std::vector<std::string> args);
  /// Many commands in one write; the replies in order.
  task<std::vector<redis_reply>> pipeline(std::vector<std::vector<std::string>> cmds);

  /// Fails what is pending with `why` and shuts the socket down. Idempotent.
  void close(const std::string& why) noexcept;
  bool alive() const noexcept { return !failed_; }
  /// Replies still owed.
  std::size_t pending() const noexcept { return pending_.size(); }
  /// Monotonic time of the last byte received (or of the connect).
  std::chrono::steady_clock::time_point last_receive() const noexcept { return last_rx_; }
  const std::string& server() const noexcept { return server_; }
  /// Called once, when the connection fails (after the pending callbacks).
  std::function<void(const std::string&)> on_fail;

  explicit redis_connection(unique_fd fd, std::string server);

 private:
  static task<void> reader(std::shared_ptr<redis_connection> self);
  static task<void> writer(std::shared_ptr<redis_connection> self);
  void fail(const std::string& why) noexcept;

  unique_fd fd_;
  std::string server_;
  redisReader* parser_ = nullptr;
  std::string out_;
  std::deque<callback> pending_;
  event wake_writer_;
  bool failed_ = false;
  std::chrono::steady_clock::time_point last_rx_;
};

/// The text of an error reply, or "" for any other reply.
inline std::string_view reply_error(const redisReply* r) noexcept {
  if (r == nullptr || r->type != REDIS_REPLY_ERROR) return {};
  return {r->str, r->len};
}
inline std::string_view reply_string(const redisReply* r) noexcept {
  if (r == nullptr || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return {};
  return {r->str, r->len};
}

}  // namespace eddy::detail
