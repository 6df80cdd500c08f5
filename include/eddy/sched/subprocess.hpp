// eddy::subprocess: child processes with pipes, awaited on a pidfd (asyncio's
// create_subprocess_exec, tokio's process::Command).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <eddy/io/stream.hpp>
#include <eddy/runtime/task.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace eddy {

/// What a child's stdin, stdout or stderr is connected to.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// opts.std_out = eddy::stdio::pipe();
/// opts.std_err = eddy::stdio::null();
/// ```
struct stdio {
  enum class mode { inherit, pipe, null, fd };
  mode how = mode::inherit;
  int fd = -1;

  /// The parent's own stream (the default).
  static stdio inherit() noexcept { return {mode::inherit, -1}; }
  /// A pipe the parent reads or writes through the subprocess object.
  static stdio pipe() noexcept { return {mode::pipe, -1}; }
  /// /dev/null.
  static stdio null() noexcept { return {mode::null, -1}; }
  /// An fd of the parent's (dup'ed into the child; the parent keeps its own).
  static stdio from_fd(int fd) noexcept { return {mode::fd, fd}; }
};

/// How to start a child. Validated by `subprocess::spawn`.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::subprocess_options o{.argv = {"grep", "-c", "x"}, .cwd = "/tmp",
///                            .std_in = eddy::stdio::pipe(), .std_out = eddy::stdio::pipe()};
/// ```
struct subprocess_options {
  /// Program and arguments; argv[0] is looked up in PATH when it has no '/'.
  /// Must be non-empty; no argument may contain a NUL byte.
  std::vector<std::string> argv = {};
  /// The environment as "KEY=VALUE" strings; nullopt inherits the parent's.
  std::optional<std::vector<std::string>> env = std::nullopt;
  /// Working directory of the child; nullopt keeps the parent's.
  std::optional<std::string> cwd = std::nullopt;
  stdio std_in = stdio::inherit();
  stdio std_out = stdio::inherit();
  stdio std_err = stdio::inherit();
  /// Send SIGKILL when the subprocess object is destroyed while the child still
  /// runs. Either way the child is reaped (in the background): never a zombie.
  bool kill_on_drop = false;
};

/// What `communicate()` collects.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::subprocess_result r = co_await p.communicate();
/// if (r.exit_code != 0) std::cerr << r.err;
/// ```
struct subprocess_result {
  /// Exit status, or minus the signal number that killed the child (as Python's
  /// returncode).
  int exit_code = 0;
  std::string out;  ///< all of stdout (empty unless stdout was a pipe)
  std::string err;  ///< all of stderr (empty unless stderr was a pipe)
};

/// A running (or finished) child process.
///
/// Spawned with posix_spawn (never fork without exec: the parent may own an io_uring
/// ring and threads); the child gets an empty signal mask, default signal handlers
/// and no fds but 0-2. Exit is observed on a pidfd, so no SIGCHLD handler is used;
/// do not set SIGCHLD to SIG_IGN or reap with waitpid(-1) elsewhere in the program.
/// Dropping the object closes the parent's pipe ends and hands a still-running child
/// to a background reaper (or kills it with `kill_on_drop`): no zombie is left.
///
/// **Thread safety:** one object is used from one thread at a time; the awaiting
/// members run on the loop of the awaiting task.
/// **Cancel safety:** `wait()` is cancel-safe (the child keeps running, wait again).
/// `read_stdout`/`read_stderr` are cancel-safe (no bytes are lost). `write_stdin` and
/// `communicate` are not: a cancelled write may have sent part of the data.
///
/// ```cpp
/// auto p = eddy::subprocess::spawn({.argv = {"sort"}, .std_in = eddy::stdio::pipe(),
///                                   .std_out = eddy::stdio::pipe()});
/// eddy::subprocess_result r = co_await p.communicate("b\na\n");
/// assert(r.out == "a\nb\n" && r.exit_code == 0);
/// ```
class subprocess {
 public:
  /// Starts the child. Throws std::invalid_argument for bad options and
  /// std::system_error naming the program when it cannot be started (ENOENT, EACCES).
  static subprocess spawn(subprocess_options options);

  subprocess() = default;
  subprocess(subprocess&& o) noexcept;
  subprocess& operator=(subprocess&& o) noexcept;
  subprocess(const subprocess&) = delete;
  subprocess& operator=(const subprocess&) = delete;
  ~subprocess();

  pid_t pid() const noexcept { return pid_; }
  /// The pidfd (readable once the child exited); -1 for a default-constructed object.
  int pidfd() const noexcept { return pidfd_; }
  /// The parent's ends of the pipes (-1 when that stream is not a pipe or closed).
  int stdin_fd() const noexcept { return in_; }
  int stdout_fd() const noexcept { return out_; }
  int stderr_fd() const noexcept { return err_; }

  /// Writes all of `data` to the child's stdin, through the loop's backend. Throws
  /// std::system_error (EPIPE when the child closed its stdin: the first loop of a
  /// process ignores SIGPIPE if it was at its default), std::logic_error when stdin
  /// is not a pipe.
  task<void> write_stdin(std::string_view data);
  /// Closes the parent's end of stdin: the child sees EOF.
  void close_stdin() noexcept;
  /// Reads what is available (waiting for at least one byte); 0 means EOF.
  task<std::size_t> read_stdout(std::span<char> buf);
  task<std::size_t> read_stderr(std::span<char> buf);

  /// Moves the parent's end of stdout (or stderr) into an eddy::stream, for
  /// read_line, read_until and friends; the subprocess no longer holds it
  /// (read_stdout and communicate then skip it). Throws std::logic_error when that
  /// stream is not an open pipe. (stdin stays with write_stdin and communicate.)
  ///
  /// ```cpp
  /// eddy::stream out = p.take_stdout();
  /// std::string first = co_await out.read_line();
  /// ```
  stream take_stdout(stream_options options = {});
  stream take_stderr(stream_options options = {});

  /// Sends `sig` (through the pidfd: never to a recycled pid). Does nothing once the
  /// child has been reaped.
  void kill(int sig = SIGKILL);
  void terminate() { kill(SIGTERM); }

  /// The exit code if the child has exited (reaping it), else nullopt. Never blocks.
  std::optional<int> try_wait();
  /// Waits for the child to exit; returns its exit code (minus the signal number
  /// when killed by one).
  task<int> wait();
  /// Writes `input` to stdin (then closes it), reads stdout and stderr to EOF at the
  /// same time (so a child that fills one pipe while we write the other cannot
  /// deadlock), then waits for the exit. Streams that are not pipes are skipped;
  /// input to a non-pipe stdin is an error (std::logic_error).
  task<subprocess_result> communicate(std::string input = {});

  /// The exit code once known.
  std::optional<int> exit_code() const noexcept { return exit_code_; }

 private:
  void release() noexcept;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int in_ = -1;
  int out_ = -1;
  int err_ = -1;
  bool kill_on_drop_ = false;
  std::optional<int> exit_code_;
};

}  // namespace eddy
