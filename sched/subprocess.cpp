// eddy::subprocess.
//
// Ownership: the object owns the pidfd and the parent's pipe ends. The pipe ends
// are O_CLOEXEC (no other child inherits them) and O_NONBLOCK on the parent's side
// only: the child's ends stay blocking, as programs expect of their stdio.
//
// Reaping: wait()/try_wait() reap through waitid(P_PIDFD). The destructor reaps a
// child that has exited, and gives a running one to the background reaper
// (subprocess_spawn.cpp) after an optional SIGKILL; so no path leaves a zombie.
//
// communicate(): stdin is written by a child task while this task reads stdout and
// stderr through two more child tasks; all three are awaited before returning, so
// no operation outlives the buffers it uses, even when communicate is cancelled.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <eddy/io/fd.hpp>
#include <eddy/runtime/loop.hpp>
#include <eddy/sched/subprocess.hpp>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "async_fd.hpp"
#include "subprocess_spawn.hpp"

namespace eddy {
namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), "eddy: subprocess: " + what);
}

// Through the running loop, if any: its backend may be watching the fd and must
// forget it before the number is reused.
void close_fd(int& fd) noexcept {
  if (fd >= 0) detail::close_fd_now(loop::current_or_null(), std::exchange(fd, -1));
}

struct pipe_pair {
  int parent = -1;
  int child = -1;
  ~pipe_pair() {
    close_fd(parent);
    close_fd(child);
  }
};

// A pipe for one stdio stream; `child_reads` is true for stdin.
void make_pipe(pipe_pair& p, bool child_reads) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
  p.parent = child_reads ? fds[1] : fds[0];
  p.child = child_reads ? fds[0] : fds[1];
  int fl = ::fcntl(p.parent, F_GETFL);
  if (fl < 0 || ::fcntl(p.parent, F_SETFL, fl | O_NONBLOCK) != 0) throw_errno(errno, "fcntl");
}

void validate(const stdio& s, const char* name) {
  if (s.how == stdio::mode::fd) {
    if (s.fd < 0)
      throw std::invalid_argument(std::string("eddy: subprocess: ") + name +
                                  ": stdio::from_fd needs an fd >= 0");
    if (::fcntl(s.fd, F_GETFD) < 0)
      throw std::invalid_argument(std::string("eddy: subprocess: ") + name + ": fd " +
                                  std::to_string(s.fd) + " is not open");
  }
}

}  // namespace

subprocess subprocess::spawn(subprocess_options o) {
  if (o.argv.empty() || o.argv[0].empty())
    throw std::invalid_argument("eddy: subprocess: argv must name a program");
  if (o.env)
    for (const std::string& e : *o.env)
      if (e.find('=') == std::string::npos || e.front() == '=' || e.find('\0') != std::string::npos)
        throw std::invalid_argument("eddy: subprocess: env entry '" + e + "' is not KEY=VALUE");
  if (o.cwd && (o.cwd->empty() || o.cwd->find('\0') != std::string::npos))
    throw std::invalid_argument("eddy: subprocess: bad cwd");
  validate(o.std_in, "std_in");
  validate(o.std_out, "std_out");
  validate(o.std_err, "std_err");

  pipe_pair pipes[3];
  const stdio* streams[3] = {&o.std_in, &o.std_out, &o.std_err};
  detail::spawn_spec spec;
  spec.path = o.argv[0];
  spec.argv = o.argv;
  spec.env = o.env;
  spec.cwd = o.cwd;
  // Sources of dup2 must not be 0-2 themselves, or an earlier dup2 could overwrite
  // a later one's source (e.g. std_out = from_fd(2), std_err = from_fd(1)): take
  // private copies above 2 first.
  std::vector<int> copies;
  struct copies_guard {
    std::vector<int>& v;
    ~copies_guard() {
      for (int fd : v) ::close(fd);
    }
  } guard{copies};
  for (int i = 0; i < 3; ++i) {
    const stdio& s = *streams[i];
    detail::child_fd f;
    f.target = i;
    switch (s.how) {
      case stdio::mode::inherit:
        continue;
      case stdio::mode::null:
        f.mode = detail::child_fd::how::null;
        break;
      case stdio::mode::pipe:
        make_pipe(pipes[i], i == 0);
        f.mode = detail::child_fd::how::dup;
        f.source = pipes[i].child;
        break;
      case stdio::mode::fd: {
        int c = ::fcntl(s.fd, F_DUPFD_CLOEXEC, 3);
        if (c < 0) throw_errno(errno, "dup");
        copies.push_back(c);
        f.mode = detail::child_fd::how::dup;
        f.source = c;
        break;
      }
    }
    spec.fds.push_back(f);
  }

  detail::spawned_process sp = detail::spawn_process(spec);
  subprocess p;
  p.pid_ = sp.pid;
  p.pidfd_ = sp.pidfd;
  p.kill_on_drop_ = o.kill_on_drop;
  p.in_ = std::exchange(pipes[0].parent, -1);
  p.out_ = std::exchange(pipes[1].parent, -1);
  p.err_ = std::exchange(pipes[2].parent, -1);
  return p;
}

subprocess::subprocess(subprocess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::exchange(o.pidfd_, -1)),
      in_(std::exchange(o.in_, -1)),
      out_(std::exchange(o.out_, -1)),
      err_(std::exchange(o.err_, -1)),
      kill_on_drop_(o.kill_on_drop_),
      exit_code_(std::exchange(o.exit_code_, std::nullopt)) {}

subprocess& subprocess::operator=(subprocess&& o) noexcept {
  if (this != &o) {
    release();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::exchange(o.pidfd_, -1);
    in_ = std::exchange(o.in_, -1);
    out_ = std::exchange(o.out_, -1);
    err_ = std::exchange(o.err_, -1);
    kill_on_drop_ = o.kill_on_drop_;
    exit_code_ = std::exchange(o.exit_code_, std::nullopt);
  }
  return *this;
}

subprocess::~subprocess() {
  release();
}

void subprocess::release() noexcept {
  close_fd(in_);
  close_fd(out_);
  close_fd(err_);
  if (pidfd_ < 0) return;
  if (!exit_code_) {
    try {
      if (kill_on_drop_) detail::send_signal(pidfd_, SIGKILL);
      siginfo_t si;
      if (!detail::try_reap(pidfd_, si)) {
        // The reaper gets its own descriptor; ours is closed through the loop.
        const int dup = ::fcntl(pidfd_, F_DUPFD_CLOEXEC, 3);
        if (dup < 0) throw std::system_error(errno, std::generic_category(), "dup");
        try {
          detail::reap_in_background(dup);
        } catch (...) {
          ::close(dup);
          throw;
        }
        close_fd(pidfd_);
        return;
      }
    } catch (...) {
      // Could not hand it to the reaper (no thread): a zombie is better than a
      // blocked destructor, but say so.
      std::fprintf(stderr, "eddy: subprocess %d could not be reaped\n", static_cast<int>(pid_));
    }
  }
  close_fd(pidfd_);
}

void subprocess::close_stdin() noexcept {
  close_fd(in_);
}

stream subprocess::take_stdout(stream_options options) {
  if (out_ < 0) throw std::logic_error("eddy: subprocess::take_stdout: stdout is not an open pipe");
  return stream(unique_fd(std::exchange(out_, -1)), options);
}

stream subprocess::take_stderr(stream_options options) {
  if (err_ < 0) throw std::logic_error("eddy: subprocess::take_stderr: stderr is not an open pipe");
  return stream(unique_fd(std::exchange(err_, -1)), options);
}

void subprocess::kill(int sig) {
  if (sig < 0 || sig > SIGRTMAX)
    throw std::invalid_argument("eddy: subprocess::kill: bad signal " + std::to_string(sig));
  if (pidfd_ < 0 || exit_code_) return;
  detail::send_signal(pidfd_, sig);
}

std::optional<int> subprocess::try_wait() {
  if (exit_code_ || pidfd_ < 0) return exit_code_;
  siginfo_t si;
  if (detail::try_reap(pidfd_, si)) exit_code_ = detail::exit_code(si);
  return exit_code_;
}

task<int> subprocess::wait() {
  if (pidfd_ < 0) throw std::logic_error("eddy: subprocess::wait on an empty subprocess");
  while (!try_wait()) co_await detail::async_readable(pidfd_);
  co_return *exit_code_;
}

task<void> subprocess::write_stdin(std::string_view data) {
  if (in_ < 0) throw std::logic_error("eddy: subprocess: stdin is not an open pipe");
  const int r = co_await detail::async_write_all(in_, data.data(), data.size());
  if (r < 0) throw_errno(-r, "write to stdin");
}

task<std::size_t> subprocess::read_stdout(std::span<char> buf) {
  if (out_ < 0) throw std::logic_error("eddy: subprocess: stdout is not an open pipe");
  const int r = co_await detail::async_read(out_, buf.data(), buf.size());
  if (r < 0) throw_errno(-r, "read stdout");
  co_return static_cast<std::size_t>(r);
}

task<std::size_t> subprocess::read_stderr(std::span<char> buf) {
  if (err_ < 0) throw std::logic_error("eddy: subprocess: stderr is not an open pipe");
  const int r = co_await detail::async_read(err_, buf.data(), buf.size());
  if (r < 0) throw_errno(-r, "read stderr");
  co_return static_cast<std::size_t>(r);
}

namespace {

// Named coroutines, parameters by value or pointer: no lambda captures across a
// suspension (STYLE.md).
// Closes stdin as soon as the input is written: a child such as sort(1) produces
// nothing before it sees EOF.
task<int> feed(subprocess* p, std::string input) {
  const int r = co_await detail::async_write_all(p->stdin_fd(), input.data(), input.size());
  p->close_stdin();
  co_return r;
}

task<int> drain(int fd, std::string* into) {
  char buf[65536];
  for (;;) {
    const int r = co_await detail::async_read(fd, buf, sizeof buf);
    if (r <= 0) co_return r;
    into->append(buf, static_cast<std::size_t>(r));
  }
}

}  // namespace

task<subprocess_result> subprocess::communicate(std::string input) {
  if (!input.empty() && in_ < 0)
    throw std::logic_error("eddy: subprocess::communicate: input given but stdin is not a pipe");
  subprocess_result res;
  std::vector<task<int>> jobs;
  const int in = in_;
  if (in >= 0) jobs.push_back(feed(this, std::move(input)));
  if (out_ >= 0) jobs.push_back(drain(out_, &res.out));
  if (err_ >= 0) jobs.push_back(drain(err_, &res.err));
  std::vector<int> results = co_await detail::run_all(std::move(jobs));
  std::size_t i = 0;
  // EPIPE on stdin is not an error: the child may exit without reading it all, as
  // Python's communicate() tolerates BrokenPipeError.
  if (in >= 0 && results[i++] < 0 && results[i - 1] != -EPIPE)
    throw_errno(-results[i - 1], "write to stdin");
  for (; i < results.size(); ++i)
    if (results[i] < 0) throw_errno(-results[i], "read output");
  res.exit_code = co_await wait();
  co_return res;
}

}  // namespace eddy
