// Helpers for the tests that run the sample programs (echo_server, tcp_proxy) as
// child processes and talk to them through plain blocking sockets, so the programs
// are checked from outside, the way a user's client sees them. Every wait has a
// generous deadline that fails the test instead of hanging it; no assertion is
// about speed.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <eddy/runtime/loop.hpp>
#include <fstream>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace eddy_test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Long enough for an ASan build on a busy 2-core machine; only reached on a hang.
inline constexpr auto hang_deadline = 30s;

inline std::string program_path(const char* env_name) {
  const char* p = std::getenv(env_name);
  return p ? p : "";
}

// The backend names the programs take, skipping io_uring where the kernel refuses it.
inline std::vector<std::string> program_backends() {
  std::vector<std::string> out;
  for (eddy::backend_kind k : eddy::available_backends()) out.emplace_back(eddy::backend_name(k));
  return out;
}

class child_process {
 public:
  child_process(const std::string& path, const std::vector<std::string>& args) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(path.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, path.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(err[1]);
    out_ = out[0];
    err_ = err[0];
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("posix_spawn " + path + ": " + std::strerror(rc));
    }
  }
  ~child_process() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
    ::close(out_);
    ::close(err_);
  }
  child_process(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }

  // Reads stdout up to "listening on HOST PORT\n" and returns the port (0 if the
  // program exited or said something else first).
  std::uint16_t wait_listening() {
    std::string line;
    const auto deadline = steady::now() + hang_deadline;
    while (steady::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c;
      if (::read(out_, &c, 1) != 1) return 0;
      if (c != '\n') {
        line += c;
        continue;
      }
      const auto sp = line.rfind(' ');
      if (line.rfind("listening on ", 0) != 0 || sp == std::string::npos) return 0;
      return static_cast<std::uint16_t>(std::stoi(line.substr(sp + 1)));
    }
    return 0;
  }

  // Waits for the exit status (-1 after the deadline, killing the child).
  int wait_exit(std::chrono::milliseconds limit = hang_deadline) {
    const auto deadline = steady::now() + limit;
    for (;;) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        if (WIFEXITED(st)) return WEXITSTATUS(st);
        return 128 + WTERMSIG(st);
      }
      if (steady::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        return -1;
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  // Everything the child wrote to stderr (call after it exited).
  std::string stderr_text() const {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(err_, buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(n));
    return s;
  }

  // Resident memory of the child, in KiB (from /proc).
  long rss_kib() const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;
  bool exited_ = false;
};

// Runs a program to completion with `args` (for option checks): exit status and stderr.
inline std::pair<int, std::string> run_to_exit(const std::string& path,
                                               const std::vector<std::string>& args) {
  child_process c(path, args);
  const int rc = c.wait_exit();
  return {rc, c.stderr_text()};
}

// A blocking loopback client socket; reads and writes time out (failing the test)
// instead of hanging.
class client_socket {
 public:
  client_socket() = default;
  explicit client_socket(int fd) : fd_(fd) { set_timeouts(); }
  client_socket(client_socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  client_socket& operator=(client_socket&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~client_socket() { close(); }

  // Connects to 127.0.0.1:port; nullopt-like invalid socket with errno on failure.
  static client_socket connect(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      const int e = errno;
      ::close(fd);
      errno = e;
      return client_socket();
    }
    return client_socket(fd);
  }

  int fd() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }
  void shutdown_write() const { ::shutdown(fd_, SHUT_WR); }

  bool send_all(std::string_view s) const {
    while (!s.empty()) {
      const ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Reads exactly n bytes (fewer at EOF, an error or the timeout).
  std::string recv_exact(std::size_t n) const {
    std::string s(n, '\0');
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::recv(fd_, s.data() + got, n - got, 0);
      // EINTR: with SO_RCVTIMEO set, an interrupted recv fails instead of being
      // restarted (io_uring's task work on a thread that created a ring does it).
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    s.resize(got);
    return s;
  }
  // 0 at EOF, -errno on error (ECONNRESET counts as the connection being closed
  // too; the caller decides), -EAGAIN on the timeout, else bytes.
  ssize_t recv_some(char* buf, std::size_t n) const {
    const ssize_t r = ::recv(fd_, buf, n, 0);
    return r < 0 ? -errno : r;
  }
  // True when the peer closed (EOF or reset) before the timeout, with no data.
  bool closed_by_peer() const {
    char c;
    const ssize_t r = recv_some(&c, 1);
    return r == 0 || r == -ECONNRESET;
  }

 private:
  void set_timeouts() const {
    timeval tv{static_cast<time_t>(hang_deadline.count()), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  int fd_ = -1;
};

// A plain listening socket standing in for an upstream the test controls.
class plain_listener {
 public:
  plain_listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 128) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("plain_listener");
    port_ = ntohs(a.sin_port);
  }
  ~plain_listener() { ::close(fd_); }
  std::uint16_t port() const noexcept { return port_; }
  // The next connection, or an invalid socket after the deadline.
  client_socket accept() const {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(hang_deadline).count())) != 1)
      return client_socket();
    return client_socket(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC));
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

inline std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Sends `data`, half-closes, and reads until EOF, all at once (a large payload
// would otherwise deadlock: the server stops reading while we do not read its
// echo). Returns what came back; `eof` tells whether it ended with EOF.
inline std::string echo_round_trip(const client_socket& s, const std::string& data,
                                   bool* eof = nullptr) {
  const int fd = s.fd();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::string got;
  std::size_t sent = 0;
  bool write_closed = false;
  bool read_done = false;
  if (eof) *eof = false;
  std::vector<char> buf(256 * 1024);
  const auto deadline = steady::now() + hang_deadline;
  while (!read_done && steady::now() < deadline) {
    if (sent == data.size() && !write_closed) {
      ::shutdown(fd, SHUT_WR);
      write_closed = true;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_closed ? 0 : POLLOUT)), 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n == 0) {
        read_done = true;
        if (eof) *eof = true;
      } else if (n > 0) {
        got.append(buf.data(), static_cast<std::size_t>(n));
      } else if (errno != EAGAIN) {
        read_done = true;
      }
    }
    if (!write_closed && (p.revents & POLLOUT)) {
      const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0)
        sent += static_cast<std::size_t>(n);
      else if (n < 0 && errno != EAGAIN)
        read_done = true;
    }
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return got;
}

// Retries `f` until it returns true or the deadline passes (for state the
// program changes asynchronously, e.g. a freed connection slot).
template <class F>
bool eventually(F f) {
  const auto deadline = steady::now() + hang_deadline;
  while (steady::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace eddy_test
