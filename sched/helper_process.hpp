// One helper process of a process_pool, as the parent sees it: the process (pid and
// pidfd) and the parent's end of its channel. Loop-independent; process_pool.cpp
// drives the channel asynchronously, tests may drive it with blocking I/O.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace eddy {
class loop;
}

namespace eddy::detail {

struct helper_launch {
  std::uint64_t max_message = 0;
  std::uint64_t rlimit_as = 0;   // bytes, 0 = no limit
  std::uint64_t rlimit_cpu = 0;  // seconds, 0 = no limit
  long spin_us = 0;
};

struct helper_hello {
  std::uint32_t version = 0;
  std::uint64_t fingerprint = 0;
  std::int32_t pid = 0;
};

class helper_process {
 public:
  /// Starts /proc/self/exe in helper mode. The channel is non-blocking on the
  /// parent's side. Throws std::system_error.
  static helper_process spawn(const helper_launch& launch);

  helper_process() = default;
  helper_process(helper_process&& o) noexcept;
  helper_process& operator=(helper_process&& o) noexcept;
  helper_process(const helper_process&) = delete;
  helper_process& operator=(const helper_process&) = delete;
  /// Closes the channel, kills the helper if it is still running and reaps it:
  /// a helper never outlives its handle as a zombie.
  ~helper_process();

  /// The loop whose backend watches this helper's fds: they are closed through it,
  /// so the backend forgets them before their numbers are reused (epoll keeps
  /// per-fd state). Must outlive this object, or be nullptr.
  void set_loop(loop* l) noexcept { loop_ = l; }

  pid_t pid() const noexcept { return pid_; }
  int channel() const noexcept { return channel_; }
  int pidfd() const noexcept { return pidfd_; }
  bool running() const noexcept { return pidfd_ >= 0 && !status_; }

  /// SIGKILL (no-op once reaped).
  void kill() noexcept;
  /// Waits for the exit and reaps (blocking); does not close the channel.
  void reap_blocking();
  /// Reaps without blocking; true once the exit status is known.
  bool try_reap();
  /// Closes the channel (the helper sees EOF and exits), waits up to `grace_ms`
  /// for it to exit, then kills and reaps it. Blocks the calling thread.
  void shutdown(int grace_ms);
  /// The exit status once reaped.
  const std::optional<siginfo_t>& status() const noexcept { return status_; }
  /// "exited with status 3" / "was killed by signal 9 (SIGKILL)" / "is running".
  std::string describe() const;

 private:
  void close_channel() noexcept;
  void release() noexcept;
  void close_fd(int& fd) noexcept;
  loop* loop_ = nullptr;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int channel_ = -1;
  std::optional<siginfo_t> status_;
};

/// Validates a hello message body; throws std::runtime_error describing the mismatch.
helper_hello parse_hello(std::span<const char> body);

}  // namespace eddy::detail
