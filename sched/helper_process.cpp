// Spawning and reaping process_pool helpers.
//
// A helper is this program re-executed through /proc/self/exe (which names the
// running binary even if its file was replaced or deleted since), with argv
//   <argv0> --eddy-process-helper ppid=<pid> max=<bytes> [as=<bytes>] [cpu=<s>] spin=<µs>
// and EDDY_PROCESS_HELPER=1 in its environment. argv0 is kept so `ps` shows whose
// helper it is. The helper's channel is dup2'ed to fd 3; every other fd above 2 is
// closed in the child, and stdin is /dev/null (helpers must not read the terminal).
// Helpers get their own process group so a terminal's Ctrl-C reaches only the
// parent, which decides; they die with the parent through PR_SET_PDEATHSIG and EOF.
#include "helper_process.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <eddy/io/fd.hpp>
#include <eddy/runtime/loop.hpp>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "helper_protocol.hpp"
#include "subprocess_spawn.hpp"

namespace eddy::detail {
namespace {

std::string own_argv0() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string first;
  std::getline(in, first, '\0');
  return first.empty() ? std::string("eddy-helper") : first;
}

}  // namespace

helper_process helper_process::spawn(const helper_launch& launch) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::system_error(errno, std::generic_category(), "eddy: socketpair");
  // dup2(3, 3) would keep FD_CLOEXEC set; move the child's end out of the way.
  if (sv[1] == helper_protocol::helper_fd) {
    int moved = ::fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    int err = errno;
    ::close(sv[1]);
    if (moved < 0) {
      ::close(sv[0]);
      throw std::system_error(err, std::generic_category(), "eddy: fcntl(F_DUPFD_CLOEXEC)");
    }
    sv[1] = moved;
  }
  int flags = ::fcntl(sv[0], F_GETFL);
  ::fcntl(sv[0], F_SETFL, flags | O_NONBLOCK);

  spawn_spec spec;
  spec.path = "/proc/self/exe";
  spec.argv = {own_argv0(), helper_protocol::helper_flag, "ppid=" + std::to_string(::getpid()),
               "max=" + std::to_string(launch.max_message),
               "spin=" + std::to_string(launch.spin_us)};
  if (launch.rlimit_as) spec.argv.push_back("as=" + std::to_string(launch.rlimit_as));
  if (launch.rlimit_cpu) spec.argv.push_back("cpu=" + std::to_string(launch.rlimit_cpu));
  spec.extra_env = {std::string(helper_protocol::helper_env) + "=1"};
  spec.fds = {{child_fd::how::null, -1, 0},
              {child_fd::how::dup, sv[1], helper_protocol::helper_fd}};
  spec.keep_fds_below = helper_protocol::helper_fd + 1;
  spec.new_process_group = true;

  spawned_process p;
  try {
    p = spawn_process(spec);
  } catch (...) {
    ::close(sv[0]);
    ::close(sv[1]);
    throw;
  }
  ::close(sv[1]);
  helper_process h;
  h.pid_ = p.pid;
  h.pidfd_ = p.pidfd;
  h.channel_ = sv[0];
  return h;
}

helper_process::helper_process(helper_process&& o) noexcept
    : loop_(o.loop_),
      pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::exchange(o.pidfd_, -1)),
      channel_(std::exchange(o.channel_, -1)),
      status_(std::exchange(o.status_, std::nullopt)) {}

helper_process& helper_process::operator=(helper_process&& o) noexcept {
  if (this != &o) {
    release();
    loop_ = o.loop_;
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::exchange(o.pidfd_, -1);
    channel_ = std::exchange(o.channel_, -1);
    status_ = std::exchange(o.status_, std::nullopt);
  }
  return *this;
}

helper_process::~helper_process() {
  release();
}

void helper_process::close_fd(int& fd) noexcept {
  if (fd < 0) return;
  close_fd_now(loop_, std::exchange(fd, -1));
}

void helper_process::close_channel() noexcept {
  close_fd(channel_);
}

void helper_process::release() noexcept {
  close_channel();
  if (pidfd_ < 0) return;
  if (!status_) {
    send_signal(pidfd_, SIGKILL);
    try {
      status_ = detail::reap_blocking(pidfd_);
    } catch (...) {
    }
  }
  close_fd(pidfd_);
}

void helper_process::kill() noexcept {
  if (pidfd_ >= 0 && !status_) {
    try {
      send_signal(pidfd_, SIGKILL);
    } catch (...) {
    }
  }
}

bool helper_process::try_reap() {
  if (status_) return true;
  if (pidfd_ < 0) return false;
  siginfo_t si;
  if (!detail::try_reap(pidfd_, si)) return false;
  status_ = si;
  return true;
}

void helper_process::reap_blocking() {
  if (pidfd_ < 0 || status_) return;
  status_ = detail::reap_blocking(pidfd_);
}

void helper_process::shutdown(int grace_ms) {
  close_channel();
  if (pidfd_ < 0 || status_) return;
  pollfd p{pidfd_, POLLIN, 0};
  while (::poll(&p, 1, grace_ms) < 0 && errno == EINTR) {
  }
  if (!try_reap()) kill();
  release();
}

std::string helper_process::describe() const {
  std::string who = "helper process " + std::to_string(pid_);
  if (!status_) return who + " is running";
  return who + " " + describe_exit(*status_);
}

helper_hello parse_hello(std::span<const char> body) {
  helper_hello h;
  if (body.size() != 16) throw std::runtime_error("eddy: malformed hello from a helper");
  std::memcpy(&h.version, body.data(), 4);
  std::memcpy(&h.fingerprint, body.data() + 4, 8);
  std::memcpy(&h.pid, body.data() + 12, 4);
  return h;
}

}  // namespace eddy::detail
