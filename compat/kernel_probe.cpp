// See kernel_probe.hpp. io_uring is probed through the raw system calls, so the
// answer does not depend on liburing being linked (eddy_info prints it either way).
#include "compat/kernel_probe.hpp"

#include <linux/io_uring.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>
#include <vector>

namespace eddy::detail {
namespace {

bool is_resource_error(int e) noexcept { return e == ENOMEM || e == EMFILE || e == ENFILE; }

[[noreturn]] void resource_error(int e, const char* what) {
  throw std::system_error(e, std::system_category(),
                          std::string("eddy: ") + what + " (a resource error, not a reason to fall back)");
}

// io_uring_setup(entries, {flags}): the ring's fd, or -errno.
int uring_setup(unsigned flags) noexcept {
  io_uring_params p{};
  p.flags = flags;
  const long r = ::syscall(__NR_io_uring_setup, 2u, &p);
  return r < 0 ? -errno : static_cast<int>(r);
}

}  // namespace

std::string errno_reason(int err) {
  std::string s = strerrorname_np(err) != nullptr ? strerrorname_np(err) : std::to_string(err);
  s += " (";
  s += std::strerror(err);
  if (err == EPERM) s += "; refused by a seccomp filter or a sysctl policy";
  if (err == ENOSYS) s += "; the kernel does not have this system call";
  s += ")";
  return s;
}

kernel_version running_kernel() {
  kernel_version v;
  utsname u{};
  if (::uname(&u) == 0) {
    v.release = u.release;
    std::sscanf(u.release, "%d.%d", &v.major, &v.minor);
  }
  return v;
}

uring_probe probe_uring() {
  uring_probe p;
  {
    std::ifstream f("/proc/sys/kernel/io_uring_disabled");
    int v = 0;
    if (f >> v && v == 2) {
      p.why = "io_uring is disabled by /proc/sys/kernel/io_uring_disabled=2";
      return p;
    }
  }
  const int fd = uring_setup(0);
  if (fd < 0) {
    if (is_resource_error(-fd)) resource_error(-fd, "io_uring_setup probe");
    p.why = "io_uring_setup: " + errno_reason(-fd);
    return p;
  }
  // Opcodes: IORING_REGISTER_PROBE (5.6).
  std::vector<unsigned char> buf(sizeof(io_uring_probe) + 256 * sizeof(io_uring_probe_op));
  auto* pr = reinterpret_cast<io_uring_probe*>(buf.data());
  const long r = ::syscall(__NR_io_uring_register, fd, IORING_REGISTER_PROBE, pr, 256u);
  const int reg_err = r < 0 ? errno : 0;
  ::close(fd);
  if (r < 0) {
    if (is_resource_error(reg_err)) resource_error(reg_err, "io_uring opcode probe");
    p.why = "io_uring opcode probe: " + errno_reason(reg_err) + " (kernel older than 5.6)";
    return p;
  }
  auto has = [&](unsigned op) {
    return op <= pr->last_op && (pr->ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
  };
  struct named {
    unsigned op;
    const char* name;
  };
  const named needed[] = {{IORING_OP_READ, "READ"},       {IORING_OP_WRITE, "WRITE"},
                          {IORING_OP_POLL_ADD, "POLL_ADD"}, {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
                          {IORING_OP_CLOSE, "CLOSE"},     {IORING_OP_ACCEPT, "ACCEPT"},
                          {IORING_OP_CONNECT, "CONNECT"}, {IORING_OP_SEND, "SEND"},
                          {IORING_OP_RECV, "RECV"},       {IORING_OP_SHUTDOWN, "SHUTDOWN"}};
  for (const named& n : needed) {
    if (!has(n.op)) {
      p.why = std::string("io_uring lacks IORING_OP_") + n.name + " (kernel too old)";
      return p;
    }
  }
  p.usable = true;
  // Setup flags: the kernel refuses an unknown one with EINVAL.
  for (unsigned flags : {unsigned{IORING_SETUP_SINGLE_ISSUER},
                         unsigned{IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN}}) {
    const int f = uring_setup(flags);
    if (f < 0) {
      if (is_resource_error(-f)) resource_error(-f, "io_uring_setup flag probe");
      break;
    }
    ::close(f);
    if (flags & IORING_SETUP_DEFER_TASKRUN)
      p.defer_taskrun = true;
    else
      p.single_issuer = true;
  }
  // Flags of an opcode cannot be probed; the version that brought them decides.
  const kernel_version k = running_kernel();
  p.multishot_accept = has(IORING_OP_ACCEPT) && k.at_least(5, 19);
  p.buffer_ring = k.at_least(5, 19);
  p.cancel_by_fd = k.at_least(5, 19);
  p.multishot_recv = has(IORING_OP_RECV) && k.at_least(6, 0);
  return p;
}

epoll_probe probe_epoll() {
  epoll_probe p;
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    const int e = errno;
    if (is_resource_error(e)) resource_error(e, "epoll_create1 probe");
    p.why = "epoll_create1: " + errno_reason(e);
    return p;
  }
  epoll_event ev{};
  const timespec zero{0, 0};
  if (::epoll_pwait2(ep, &ev, 1, &zero, nullptr) >= 0) {
    ::close(ep);
    p.usable = p.pwait2 = true;
    return p;
  }
  const int e = errno;
  if (is_resource_error(e)) {
    ::close(ep);
    resource_error(e, "epoll_pwait2 probe");
  }
  p.why = "epoll_pwait2: " + errno_reason(e) + (e == ENOSYS ? " (kernel older than 5.11)" : "");
  if (!epoll_pwait2_missing(e)) {  // the call exists and failed: not a kernel we know
    ::close(ep);
    return p;
  }
  const int r = ::epoll_wait(ep, &ev, 1, 0);
  const int e2 = errno;
  ::close(ep);
  if (r >= 0) {
    p.usable = true;
    p.why += "; epoll_wait instead, timeouts rounded up to the millisecond";
    return p;
  }
  if (is_resource_error(e2)) resource_error(e2, "epoll_wait probe");
  p.why += "; epoll_wait: " + errno_reason(e2);
  return p;
}

}  // namespace eddy::detail
