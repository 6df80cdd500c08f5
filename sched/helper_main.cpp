// The helper side of process_pool: what a re-executed program does when main()
// calls process_pool::helper_main_if_requested(argc, argv) in helper mode.
//
// Start-up, in order:
//   1. PR_SET_PDEATHSIG(SIGKILL), then compare getppid() with the parent pid passed
//      on the command line: if the parent died before the prctl, we were already
//      re-parented and no signal will ever come, so exit now.
//   2. Resource limits (RLIMIT_AS, RLIMIT_CPU) when the pool asked for them.
//   3. Send hello (protocol version, registry fingerprint, pid).
// Then serve calls one at a time until EOF on the channel (the parent closed it or
// died), and exit(0). A call that throws is answered with `raised`; a call that
// cannot run (unknown name, wrong signature, undecodable arguments) with `rejected`.
//
// Waiting for the next call spins for a few tens of microseconds before blocking:
// on an idle 2-core VM a blocking read costs ~25 µs of wakeup latency per message,
// which is the whole latency budget of a round trip.
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <eddy/sched/process_pool.hpp>
#include <eddy/sched/remote.hpp>
#include <exception>
#include <string>
#include <typeinfo>
#include <vector>

#include "helper_protocol.hpp"
#include "remote_invoke.hpp"

namespace eddy {
namespace {

namespace proto = detail::helper_protocol;

struct helper_config {
  pid_t parent = 0;
  std::uint64_t max_message = 0;
  std::uint64_t rlimit_as = 0;
  std::uint64_t rlimit_cpu = 0;
  long spin_us = 0;
};

[[noreturn]] void helper_fail(const char* what) {
  std::fprintf(stderr, "eddy helper %d: %s\n", static_cast<int>(::getpid()), what);
  std::fflush(stderr);
  ::_exit(70);  // EX_SOFTWARE; the parent reports start-up failures
}

std::uint64_t parse_number(const char* s, const char* key) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') {
    std::string msg = std::string("bad helper argument ") + key;
    helper_fail(msg.c_str());
  }
  return v;
}

helper_config parse_config(int argc, char** argv) {
  helper_config c;
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    auto eq = a.find('=');
    if (eq == std::string_view::npos) helper_fail("malformed helper argument");
    std::string key(a.substr(0, eq));
    const char* value = argv[i] + eq + 1;
    std::uint64_t v = parse_number(value, key.c_str());
    if (key == "ppid")
      c.parent = static_cast<pid_t>(v);
    else if (key == "max")
      c.max_message = v;
    else if (key == "as")
      c.rlimit_as = v;
    else if (key == "cpu")
      c.rlimit_cpu = v;
    else if (key == "spin")
      c.spin_us = static_cast<long>(v);
    else
      helper_fail("unknown helper argument");
  }
  if (c.parent <= 1 || c.max_message == 0) helper_fail("missing helper arguments");
  return c;
}

class channel {
 public:
  channel(int fd, long spin_us) : fd_(fd), spin_us_(spin_us) {}

  // false on EOF before the first byte; exits on errors and EOF mid-message.
  bool read_exact(void* dst, std::size_t n, bool spin) {
    char* p = static_cast<char*>(dst);
    std::size_t got = 0;
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::microseconds(spin ? spin_us_ : 0);
    while (got < n) {
      ssize_t r = ::recv(fd_, p + got, n - got, MSG_DONTWAIT);
      if (r > 0) {
        got += static_cast<std::size_t>(r);
        continue;
      }
      if (r == 0) {
        if (got == 0) return false;
        std::exit(0);  // the parent went away mid-message
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) std::exit(0);
      if (std::chrono::steady_clock::now() < deadline) {
        __builtin_ia32_pause();
        continue;
      }
      pollfd pfd{fd_, POLLIN, 0};
      ::poll(&pfd, 1, -1);
    }
    return true;
  }

  // Header and body in one sendmsg: the parent then wakes once per reply, not twice.
  void send(proto::kind k, std::uint64_t id, std::span<const char> body) {
    proto::header h;
    h.kind_ = static_cast<std::uint32_t>(k);
    h.id = id;
    h.length = body.size();
    iovec iov[2] = {{&h, sizeof h}, {const_cast<char*>(body.data()), body.size()}};
    std::size_t first = 0;
    while (first < 2) {
      msghdr m{};
      m.msg_iov = iov + first;
      m.msg_iovlen = 2 - first;
      ssize_t r = ::sendmsg(fd_, &m, MSG_NOSIGNAL);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) {
        pollfd pfd{fd_, POLLOUT, 0};
        ::poll(&pfd, 1, -1);
        continue;
      }
      if (r < 0) std::exit(0);  // the parent is gone
      auto n = static_cast<std::size_t>(r);
      while (first < 2 && n >= iov[first].iov_len) n -= iov[first++].iov_len;
      if (first < 2) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + n;
        iov[first].iov_len -= n;
      }
    }
  }

 private:
  int fd_;
  long spin_us_;
};

constexpr std::uint64_t name_slack = 64 * 1024;

[[noreturn]] void serve(const helper_config& cfg) {
  channel ch(proto::helper_fd, cfg.spin_us);
  std::vector<char> body, out;
  for (;;) {
    proto::header h;
    if (!ch.read_exact(&h, sizeof h, true)) std::exit(0);
    if (h.magic_ != proto::magic || h.kind_ != static_cast<std::uint32_t>(proto::kind::call))
      helper_fail("protocol error: bad frame from the parent");
    // max_message bounds the arguments; the frame adds the name and 12 bytes.
    if (h.length > cfg.max_message + name_slack || h.length < 12)
      helper_fail("protocol error: bad length");
    body.resize(h.length);
    ch.read_exact(body.data(), body.size(), false);

    std::uint32_t name_len;
    std::memcpy(&name_len, body.data(), 4);
    if (name_len > h.length - 12) helper_fail("protocol error: bad name length");
    std::string_view name(body.data() + 4, name_len);
    std::uint64_t sig;
    std::memcpy(&sig, body.data() + 4 + name_len, 8);
    std::span<const char> args(body.data() + 12 + name_len, h.length - 12 - name_len);

    // The reply kinds of remote_invoke.hpp are the protocol's result, raised, rejected.
    const detail::remote_reply r =
        detail::invoke_registered(name, sig, args, out, cfg.max_message);
    ch.send(r == detail::remote_reply::result   ? proto::kind::result
            : r == detail::remote_reply::raised ? proto::kind::raised
                                                : proto::kind::rejected,
            h.id, out);
  }
}

}  // namespace

void process_pool::helper_main_if_requested(int argc, char** argv) {
  if (argc < 2 || argv == nullptr || argv[1] == nullptr ||
      std::strcmp(argv[1], proto::helper_flag) != 0)
    return;
  helper_config cfg = parse_config(argc, argv);

  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) helper_fail("prctl(PR_SET_PDEATHSIG) failed");
  if (::getppid() != cfg.parent) ::_exit(0);  // the parent died before the prctl

  auto limit = [](int resource, std::uint64_t v, const char* what) {
    if (v == 0) return;
    rlimit rl{static_cast<rlim_t>(v), static_cast<rlim_t>(v)};
    if (::setrlimit(resource, &rl) != 0) helper_fail(what);
  };
  limit(RLIMIT_AS, cfg.rlimit_as, "setrlimit(RLIMIT_AS) failed");
  limit(RLIMIT_CPU, cfg.rlimit_cpu, "setrlimit(RLIMIT_CPU) failed");
  ::unsetenv(proto::helper_env);

  try {
    detail::registry_check();
  } catch (const std::exception& e) {
    helper_fail(e.what());
  }

  std::vector<char> hello(4 + 8 + 4);
  const std::uint32_t v = proto::version;
  const std::uint64_t fp = detail::registry_fingerprint();
  const std::int32_t pid = ::getpid();
  std::memcpy(hello.data(), &v, 4);
  std::memcpy(hello.data() + 4, &fp, 8);
  std::memcpy(hello.data() + 12, &pid, 4);
  channel(proto::helper_fd, 0).send(proto::kind::hello, 0, hello);
  serve(cfg);
}

}  // namespace eddy
