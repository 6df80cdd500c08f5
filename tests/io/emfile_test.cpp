// RELIABILITY row 2 (scaled): accept under EMFILE. The server runs in a child
// process with RLIMIT_NOFILE 64 and uses up every fd; this process (its own
// limit untouched) is the client: it keeps 5 connections open, then hammers the
// listener with 300 connects (the row's 500 clients for 10 s are a soak).
// Passes when the server does not spin (its loop stays idle while nothing
// happens: a busy loop would count millions of iterations), the existing
// connections keep echoing, the hammered connections were shed (reset) rather
// than left hanging, and accepts resume once fds are freed.
//
// The child is forked before it creates any loop or ring (DESIGN.md §6: a
// process that owns a ring is never forked), so this is not the loop fixture.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include "io/net_support.hpp"
#include "support/loop_fixture.hpp"

using namespace std::chrono_literals;
using eddy::task;

namespace {

class emfile_test : public ::testing::TestWithParam<eddy::backend_kind> {};

// ---- the server (child process) ----

task<void> send_u64(int fd, std::uint64_t v) {
  co_await eddy::write_all(fd, std::as_bytes(std::span(&v, 1)));
}

task<int> server(int cmd_in, int rep_out) {
  auto l = eddy::tcp_listener::bind(eddy::socket_address::loopback(0), {.backlog = 64});
  auto srv = eddy::spawn(eddy_test::echo_server(&l, SIZE_MAX));
  co_await send_u64(rep_out, l.local_address().port());
  std::vector<int> fillers;
  for (;;) {
    std::array<std::byte, 1> c;
    if (co_await eddy::read(cmd_in, c) == 0) break;
    switch (static_cast<char>(c[0])) {
      case 'E':  // exhaust every fd
        for (;;) {
          const int f = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
          if (f < 0) break;
          fillers.push_back(f);
        }
        co_await send_u64(rep_out, fillers.size());
        break;
      case 'I': {  // idle: how many loop iterations in 300 ms of nothing?
        const std::uint64_t before = eddy::loop::current().stats().iterations;
        co_await eddy::sleep_for(300ms);
        co_await send_u64(rep_out, eddy::loop::current().stats().iterations - before);
        break;
      }
      case 'S':
        co_await send_u64(rep_out, l.shed_connections());
        break;
      case 'F':  // free the fds
        for (int f : fillers) ::close(f);
        fillers.clear();
        co_await send_u64(rep_out, 0);
        break;
      default:
        break;
    }
  }
  srv.cancel();
  try {
    co_await srv;
  } catch (const eddy::cancelled_error&) {
  }
  co_await l.close();
  co_return 0;
}

[[noreturn]] void child(eddy::backend_kind k, int cmd_in, int rep_out) {
  rlimit rl{64, 64};
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(10);
  int code = 11;
  try {
    eddy::loop_options o;
    o.backend = k;
    eddy::loop lp(o);
    code = lp.run(server(cmd_in, rep_out));
    lp.close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "emfile child: %s\n", e.what());
  }
  ::_exit(code);
}

// ---- the client (this process), plain blocking sockets with timeouts ----
//
// Every call retries on EINTR: a process stopped and continued (as a machine's CPU
// throttling may do) sees EINTR from calls that carry a timeout, which the kernel
// cannot restart. Timeouts are generous: the suite runs two tests at a time on a
// shared 2-core machine, and a timeout only ever costs time when something is wrong.

template <class F>
ssize_t retry(F call) {
  ssize_t r;
  do r = call();
  while (r < 0 && errno == EINTR);
  return r;
}

bool wait_for(int fd, short events) {
  pollfd p{fd, events, 0};
  return retry([&] { return ::poll(&p, 1, 10'000); }) == 1;
}

std::uint64_t ask(int cmd_out, int rep_in, char c) {
  EXPECT_EQ(retry([&] { return ::write(cmd_out, &c, 1); }), 1);
  std::uint64_t v = ~0ull;
  if (wait_for(rep_in, POLLIN))
    EXPECT_EQ(retry([&] { return ::read(rep_in, &v, sizeof v); }), static_cast<ssize_t>(sizeof v));
  else
    ADD_FAILURE() << "no reply from the server for '" << c << "'";
  return v;
}

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Non-blocking connect, then poll: a blocking connect cannot resume after EINTR.
  int err = 0;
  socklen_t len = sizeof err;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 &&
      (errno != EINPROGRESS || !wait_for(fd, POLLOUT) ||
       ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool echoes(int fd, char c) {
  if (retry([&] { return ::send(fd, &c, 1, MSG_NOSIGNAL); }) != 1) {
    ADD_FAILURE() << "send: " << std::strerror(errno);
    return false;
  }
  char r = 0;
  const ssize_t n = retry([&] { return ::recv(fd, &r, 1, 0); });
  if (n != 1)
    ADD_FAILURE() << "recv returned " << n << ": " << (n < 0 ? std::strerror(errno) : "EOF");
  return n == 1 && r == c;
}

}  // namespace

TEST_P(emfile_test, accept_under_emfile_does_not_spin_keeps_old_connections_and_recovers) {
  int cmd[2], rep[2];
  ASSERT_EQ(::pipe2(cmd, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(rep, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(cmd[1]);
    ::close(rep[0]);
    ::fcntl(cmd[0], F_SETFL, O_NONBLOCK);
    ::fcntl(rep[1], F_SETFL, O_NONBLOCK);
    child(GetParam(), cmd[0], rep[1]);
  }
  ::close(cmd[0]);
  ::close(rep[1]);
  std::uint64_t port = 0;
  {
    ASSERT_TRUE(wait_for(rep[0], POLLIN));
    ASSERT_EQ(retry([&] { return ::read(rep[0], &port, sizeof port); }),
              static_cast<ssize_t>(sizeof port));
  }
  std::vector<int> old;
  for (int i = 0; i < 5; ++i) {
    old.push_back(connect_to(static_cast<std::uint16_t>(port)));
    ASSERT_GE(old.back(), 0);
    EXPECT_TRUE(echoes(old.back(), static_cast<char>('a' + i)));
  }
  EXPECT_GT(ask(cmd[1], rep[0], 'E'), 0u);

  // The hammer: every one of these arrives while the server has no fd to spare.
  std::vector<int> hammer;
  for (int i = 0; i < 300; ++i) {
    const int fd = connect_to(static_cast<std::uint16_t>(port));
    if (fd >= 0) hammer.push_back(fd);
  }
  int shed_seen = 0;
  for (int fd : hammer) {
    char b;
    // EOF or reset: shed. A timeout (EAGAIN) would be a hang.
    const ssize_t r = retry([&] { return ::recv(fd, &b, 1, 0); });
    shed_seen += r == 0 || (r < 0 && errno == ECONNRESET);
    ::close(fd);
  }
  EXPECT_EQ(shed_seen, static_cast<int>(hammer.size()));
  EXPECT_GT(ask(cmd[1], rep[0], 'S'), 0u);

  // No busy loop: 300 ms with nothing to do takes a handful of iterations (the
  // back-off timer at most); a spinning accept would take hundreds of thousands.
  EXPECT_LT(ask(cmd[1], rep[0], 'I'), 200u);

  for (std::size_t i = 0; i < old.size(); ++i)
    EXPECT_TRUE(echoes(old[i], static_cast<char>('A' + i)));

  // Free the fds: accepts resume.
  ask(cmd[1], rep[0], 'F');
  for (int i = 0; i < 5; ++i) {
    const int fd = connect_to(static_cast<std::uint16_t>(port));
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(echoes(fd, 'z'));
    old.push_back(fd);
  }
  for (int fd : old) ::close(fd);
  ::close(cmd[1]);  // EOF: the server stops
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(rep[0]);
}

INSTANTIATE_TEST_SUITE_P(backends, emfile_test, ::testing::ValuesIn(eddy_test::backends()),
                         eddy_test::backend_param_name);
