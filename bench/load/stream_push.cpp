// stream_push: the load of the one-way stream row (S1 in bench/compare): N
// connections, each a plain thread with a blocking socket sending 256 KiB writes
// as fast as the server takes them; nothing is read back. No eddy, so the same
// yardstick for every sink. Prints one JSON line: MiB/s over the measured window.
//
//   stream_push HOST PORT [--conns N (1..64, default 4)] [--secs S] [--warmup S] --json
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: stream_push HOST PORT [--conns N] [--secs S] [--warmup S] [--json]\n");
    return 2;
  }
  const char* host = argv[1];
  const int port = std::atoi(argv[2]);
  int conns = 4;
  double secs = 1, warmup = 0.2;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--conns") == 0 && i + 1 < argc) conns = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--secs") == 0 && i + 1 < argc) secs = std::atof(argv[++i]);
    else if (std::strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) warmup = std::atof(argv[++i]);
  }
  if (port < 1 || port > 65535 || conns < 1 || conns > 64 || secs <= 0 || secs > 3600 ||
      warmup < 0 || warmup > 3600) {
    std::fprintf(stderr, "stream_push: need PORT 1..65535, --conns 1..64, --secs 0..3600\n");
    return 2;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    std::fprintf(stderr, "stream_push: HOST must be a numeric IPv4 address\n");
    return 2;
  }
  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<unsigned long long> bytes{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&] {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ++errors;
        close(fd);
        return;
      }
      timeval tv{0, 200'000};  // a send blocked past the end is cut short
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      static char buf[256 * 1024];
      while (!stop.load(std::memory_order_relaxed)) {
        const ssize_t r = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        if (r < 0) {
          if (errno == EAGAIN || errno == EINTR) continue;
          ++errors;
          break;
        }
        if (measuring.load(std::memory_order_relaxed)) bytes += static_cast<unsigned long long>(r);
      }
      close(fd);
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  measuring = true;
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(secs));
  measuring = false;
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const unsigned long long b = bytes.load();
  stop = true;
  for (auto& t : threads) t.join();
  std::printf("{\"conns\":%d,\"secs\":%.3f,\"bytes\":%llu,\"mib_per_s\":%.1f,\"errors\":%d}\n", conns,
              dt, b, b / dt / (1024.0 * 1024.0), errors.load());
  return errors.load() == conns ? 1 : 0;
}
