// Which I/O backend a loop runs on, and what this machine offers (DESIGN.md §4).
// Every backend's name is spelled here and in io/backend_table.cpp, nowhere else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace eddy {

/// Which I/O backend a loop runs on.
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// eddy::loop_options o;
/// o.backend = eddy::backend_kind::epoll;  // what most containers get
/// ```
enum class backend_kind : std::uint8_t {
  from_env,   ///< EDDY_BACKEND (a backend's name, or auto); auto if unset
  automatic,  ///< the first backend this machine allows, in the order of backend_kinds()
  io_uring,
  epoll,
  libuv,  ///< libuv's uv_poll_t under the readiness engine; also attaches to a host's uv_loop_t
};

/// What a loop's backend does with I/O, for code that picks a strategy by it
/// instead of by the backend's name, so that a new backend needs no change there
/// (eddyloop chooses how to write and how to watch a Python-owned fd this way).
///
/// **Thread safety:** a value type. **Cancel safety:** n/a.
///
/// ```cpp
/// if (l.io_caps().batched_submission) queue_write_op(); else send_now();
/// ```
struct io_capabilities {
  /// An operation costs no system call of its own: submissions go to the kernel
  /// together, with the loop's next wait (io_uring). Off it, each operation that
  /// the kernel must see is a system call of its own.
  bool batched_submission = false;
  /// A poll holds the open file it was given, not the fd number: nothing of it
  /// outlives the op, so polling an fd that its owner closes without telling eddy
  /// is safe (io_uring). Off it, watch a dup that eddy closes itself.
  bool poll_holds_file = false;
  /// A stream's receive() keeps reading ahead while nobody waits (io_uring's
  /// multishot receive, the readiness engine's emulation of it), queuing up to 8
  /// chunks per socket, so try_receive() can hand over several at once. Off it
  /// (io_uring before 6.0, or without a buffer ring) each receive() reads when asked
  /// and try_receive() finds nothing.
  bool receive_read_ahead = false;
};

/// The backend's name as EDDY_BACKEND and the samples' `--backend` spell it
/// ("io_uring", "epoll", "libuv", "auto", "from_env").
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
std::string_view backend_name(backend_kind k) noexcept;

/// Parses a name written by backend_name() ("uring" is accepted for io_uring);
/// std::nullopt for anything else.
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
///
/// ```cpp
/// if (auto k = eddy::parse_backend(argv[1])) o.backend = *k;
/// else std::fprintf(stderr, "one of: %s\n", eddy::backend_names().c_str());
/// ```
std::optional<backend_kind> parse_backend(std::string_view name) noexcept;

/// Every concrete backend eddy was built with, in the order `automatic` tries them.
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
std::vector<backend_kind> backend_kinds();

/// "auto, io_uring, epoll, libuv": the names parse_backend() takes, for usage messages.
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
std::string backend_names();

/// True if a loop could run on backend `k` here (io_uring: the kernel allows it
/// and has the opcodes eddy needs). `why` receives the reason when false.
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
///
/// ```cpp
/// std::string why;
/// if (!eddy::backend_available(eddy::backend_kind::io_uring, &why)) std::puts(why.c_str());
/// ```
bool backend_available(backend_kind k, std::string* why = nullptr);

/// The backends a loop could run on here, in backend_kinds() order.
///
/// **Thread safety:** any thread. **Cancel safety:** n/a.
std::vector<backend_kind> available_backends();

}  // namespace eddy
