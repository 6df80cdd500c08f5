// Kernel feature probing, in one place (DESIGN.md §4). Every backend asks here what
// the kernel allows instead of finding out by failing, and `samples/eddy_info`
// prints the same answers. A probe makes the system call a backend would make,
// once, with the smallest arguments (a 2-entry io_uring, an empty epoll set), and
// caches nothing: a seccomp filter installed later is seen by the next probe.
//
// What is "not usable" and what is an error: EPERM (seccomp, io_uring_disabled),
// ENOSYS (no such system call) and EINVAL (an unknown flag) are answers, written to
// `why`. ENOMEM, EMFILE and ENFILE are resource errors: the probe throws
// std::system_error, never reporting them as "this backend cannot run here".
#pragma once

#include <cerrno>
#include <string>

namespace eddy::detail {

/// The running kernel's release (uname), e.g. 6.1.0-13-amd64 → {6, 1}.
struct kernel_version {
  int major = 0;
  int minor = 0;
  std::string release;
  bool at_least(int ma, int mi) const noexcept { return major > ma || (major == ma && minor >= mi); }
};
kernel_version running_kernel();

/// What io_uring offers here. Opcodes come from IORING_REGISTER_PROBE; setup flags
/// from trying them; what neither can tell (multishot flags, buffer rings) from the
/// kernel version that introduced it.
struct uring_probe {
  bool usable = false;        // io_uring_setup works and the opcodes eddy needs are there
  std::string why;            // when !usable: the reason, naming the errno
  bool single_issuer = false; // IORING_SETUP_SINGLE_ISSUER (6.0)
  bool defer_taskrun = false; // IORING_SETUP_DEFER_TASKRUN (6.1)
  bool multishot_accept = false;  // IORING_ACCEPT_MULTISHOT (5.19)
  bool multishot_recv = false;    // IORING_RECV_MULTISHOT (6.0)
  bool buffer_ring = false;       // IORING_REGISTER_PBUF_RING (5.19)
  bool cancel_by_fd = false;      // IORING_ASYNC_CANCEL_FD (5.19)
};
/// Throws std::system_error on a resource error.
uring_probe probe_uring();

/// epoll as eddy's epoll backend uses it: epoll_create1, then epoll_pwait2 (5.11,
/// nanosecond timeouts) or, where that is missing (ENOSYS) or refused (EPERM, as
/// by container seccomp profiles older than the call), epoll_wait with timeouts
/// rounded up to the millisecond.
struct epoll_probe {
  bool usable = false;  // epoll_create1 and one of the two waits work
  bool pwait2 = false;  // epoll_pwait2 works
  std::string why;      // !usable: the reason; usable && !pwait2: why epoll_wait
};
/// Throws std::system_error on a resource error.
epoll_probe probe_epoll();

/// True for the errno with which epoll_pwait2 says it cannot be used here at all
/// (ENOSYS: kernel before 5.11; EPERM: refused by a seccomp filter), as opposed
/// to a failure of one call.
inline bool epoll_pwait2_missing(int err) noexcept { return err == ENOSYS || err == EPERM; }

/// "EPERM (refused by a seccomp filter or policy)": errno's name and what it most
/// likely means for a probe.
std::string errno_reason(int err);

}  // namespace eddy::detail
