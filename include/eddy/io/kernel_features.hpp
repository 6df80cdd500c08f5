// What this machine's kernel offers eddy's backends, probed now (DESIGN.md §4).
// samples/eddy_info prints it; EDDY_LOG=debug shows the same decisions as a loop
// makes them.
#pragma once

#include <string>

namespace eddy {

/// The answers of eddy's kernel probes (compat/). Each probe makes the system call
/// a backend would make, once, with the smallest arguments; nothing is cached, so a
/// seccomp filter installed since the last call is seen.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
struct kernel_features {
  std::string kernel_release;  ///< uname -r
  bool io_uring = false;       ///< io_uring_setup works and has the opcodes eddy needs
  std::string io_uring_why;    ///< when !io_uring: the reason, naming the errno
  bool uring_single_issuer = false;     ///< IORING_SETUP_SINGLE_ISSUER (6.0)
  bool uring_defer_taskrun = false;     ///< IORING_SETUP_DEFER_TASKRUN (6.1)
  bool uring_multishot_accept = false;  ///< IORING_ACCEPT_MULTISHOT (5.19)
  bool uring_multishot_recv = false;    ///< IORING_RECV_MULTISHOT (6.0)
  bool uring_buffer_ring = false;       ///< provided buffer rings (5.19)
  bool uring_cancel_by_fd = false;      ///< IORING_ASYNC_CANCEL_FD (5.19)
  bool epoll = false;          ///< epoll_create1 and a wait (epoll_pwait2 or epoll_wait) work
  bool epoll_pwait2 = false;   ///< epoll_pwait2 (5.11): waits to the nanosecond; without
                               ///< it epoll_wait, timeouts rounded up to the millisecond
  std::string epoll_why;       ///< when !epoll: the reason; when !epoll_pwait2: why not
  bool libuv = false;          ///< eddy was built with libuv and a uv loop can be made
  std::string libuv_why;       ///< when !libuv: the reason
  std::string libuv_version;   ///< libuv's version string, empty without libuv
};

/// Probes now. Throws std::system_error for a resource error (ENOMEM, EMFILE,
/// ENFILE), which is never reported as "not usable".
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
///
/// ```cpp
/// const eddy::kernel_features f = eddy::probe_kernel_features();
/// if (!f.io_uring) std::printf("no io_uring: %s\n", f.io_uring_why.c_str());
/// ```
kernel_features probe_kernel_features();

}  // namespace eddy
