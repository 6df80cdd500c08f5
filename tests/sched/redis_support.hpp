// A real redis-server for cluster_pool's tests and benchmarks: started in a fresh
// temporary directory on a Unix socket (and a loopback port when asked), with AOF
// (appendfsync always) so a restart keeps what was written; stopped and removed by
// the destructor. No mock: CI machines start with nothing running.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace eddy_test {

/// The redis-server binary, or nullopt (tests then GTEST_SKIP saying so).
inline std::optional<std::string> redis_server_binary() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"})
    if (::access(p, X_OK) == 0) return std::string(p);
  return std::nullopt;
}

inline std::uint16_t free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class redis_server {
 public:
  struct options {
    bool tcp = false;
    std::string password;
    std::string maxmemory;  // e.g. "1mb"
  };
  explicit redis_server(options o) : o_(std::move(o)) {
    char tmpl[] = "/tmp/eddy-redis-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    sock_ = dir_ + "/redis.sock";
    if (o_.tcp) port_ = free_loopback_port();
    start();
  }
  redis_server() : redis_server(options{}) {}
  ~redis_server() {
    stop(SIGKILL);
    std::string cmd = "rm -rf '" + dir_ + "'";
    [[maybe_unused]] int r = std::system(cmd.c_str());
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  void start() {
    std::vector<std::string> args = {"redis-server", "--port", std::to_string(port_),
                                     "--bind", "127.0.0.1", "--unixsocket", sock_,
                                     "--unixsocketperm", "700", "--dir", dir_,
                                     "--appendonly", "yes", "--appendfsync", "always",
                                     "--save", "", "--daemonize", "no",
                                     "--logfile", dir_ + "/redis.log"};
    if (!o_.password.empty()) args.insert(args.end(), {"--requirepass", o_.password});
    if (!o_.maxmemory.empty())
      args.insert(args.end(), {"--maxmemory", o_.maxmemory, "--maxmemory-policy", "noeviction"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string bin = redis_server_binary().value();
    if (int e = ::posix_spawn(&pid_, bin.c_str(), nullptr, nullptr, argv.data(), environ))
      throw std::runtime_error("cannot start redis-server: " + std::to_string(e));
    // Ready once the Unix socket accepts a connection (it is created after the AOF
    // is loaded).
    for (int i = 0; i < 500; ++i) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_.c_str());
      const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      ::close(fd);
      if (ok) return;
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start; see " + dir_ + "/redis.log");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("redis-server did not open its socket in 5 s");
  }
  /// SIGTERM: Redis flushes the AOF and exits. SIGKILL: it just dies.
  void stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  void restart() {
    stop(SIGTERM);
    start();
  }

  std::string unix_url(std::string_view password = {}) const {
    std::string u = "unix:" + sock_;
    if (!password.empty()) u += "?password=" + std::string(password);
    return u;
  }
  std::string tcp_url(std::string_view userpass = {}) const {
    return "redis://" + (userpass.empty() ? std::string() : std::string(userpass) + "@") +
           "127.0.0.1:" + std::to_string(port_) + "/0";
  }
  const std::string& socket_path() const { return sock_; }
  const std::string& dir() const { return dir_; }

 private:
  options o_;
  std::string dir_, sock_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace eddy_test
