// idle_conns: BENCHMARKS.md M1, memory per idle connection. Opens N connections to
// an echo server, checks each with one small echo (so the server has accepted it
// and is waiting in a read), then holds them idle and reads the server's RSS from
// /proc/PID/status before and after. Prints one line (and --json). Does not use
// eddy, so it measures every server alike.
//
//   idle_conns HOST PORT --pid PID [--conns N] [--settle S]
//
// The RSS growth divided by N is the per-connection cost in user space plus what
// the kernel charges to the process (socket buffers are not RSS). Needs N+16 fds
// here and in the server (raise `ulimit -n`).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

long rss_kib(long pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

bool parse_long(std::string_view s, long lo, long hi, long& out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && out >= lo && out <= hi;
}

int usage(const char* why) {
  std::fprintf(stderr,
               "idle_conns: %s\nusage: idle_conns HOST PORT --pid PID [--conns N (1..100000, default "
               "10000)] [--settle S (0..60, default 2)] [--json]\n",
               why);
  return 2;
}

int open_one(const sockaddr_in& a) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  char b = 'x';
  if (::send(fd, &b, 1, MSG_NOSIGNAL) != 1 || ::recv(fd, &b, 1, 0) != 1) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage("HOST and PORT are required");
  long port = 0, pid = 0, conns = 10000, settle = 2;
  bool json = false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) return usage("HOST must be an IPv4 literal");
  if (!parse_long(argv[2], 1, 65535, port)) return usage("PORT must be 1..65535");
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  for (int i = 3; i < argc; ++i) {
    const std::string_view k = argv[i];
    if (k == "--json") {
      json = true;
      continue;
    }
    if (i + 1 >= argc) return usage("option without a value");
    const std::string_view v = argv[++i];
    if (k == "--pid" && parse_long(v, 1, 1L << 30, pid)) continue;
    if (k == "--conns" && parse_long(v, 1, 100000, conns)) continue;
    if (k == "--settle" && parse_long(v, 0, 60, settle)) continue;
    return usage("bad option or value");
  }
  if (pid == 0) return usage("--pid is required (the server's pid)");
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);

  const long before = rss_kib(pid);
  if (before < 0) return usage("cannot read the server's /proc/PID/status");
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(conns));
  long failed = 0;
  for (long i = 0; i < conns; ++i) {
    const int fd = open_one(a);
    if (fd < 0) ++failed;
    else fds.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::seconds(settle));
  const long after = rss_kib(pid);
  const double per = fds.empty() ? 0.0 : static_cast<double>(after - before) * 1024.0 / static_cast<double>(fds.size());
  if (json) {
    std::printf("{\"conns\":%zu,\"failed\":%ld,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"bytes_per_conn\":%.0f}\n",
                fds.size(), failed, before, after, per);
  } else {
    std::printf("idle conns %zu (failed %ld): server RSS %ld KiB -> %ld KiB, %.0f bytes per connection\n", fds.size(),
                failed, before, after, per);
  }
  for (int fd : fds) ::close(fd);
  return failed == 0 ? 0 : 1;
}
