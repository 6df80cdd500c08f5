// Backend selection, in one place (DESIGN.md §4): EDDY_BACKEND or the loop option;
// `auto` probes io_uring (io_uring_disabled, EPERM from seccomp, ENOSYS, missing
// opcodes) and falls back to epoll, logging why at debug level. A resource error
// (ENOMEM, EMFILE, ENFILE) is raised, never hidden behind the fallback.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "io/backend.hpp"
#include "runtime/log.hpp"

namespace eddy::detail {

namespace {

backend_kind from_env() {
  const char* v = std::getenv("EDDY_BACKEND");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return backend_kind::automatic;
  if (std::strcmp(v, "io_uring") == 0 || std::strcmp(v, "uring") == 0) return backend_kind::io_uring;
  if (std::strcmp(v, "epoll") == 0) return backend_kind::epoll;
  throw std::invalid_argument(std::string("EDDY_BACKEND must be io_uring, epoll or auto; got '") + v + "'");
}

bool is_resource_error(int e) { return e == ENOMEM || e == EMFILE || e == ENFILE; }

}  // namespace

std::unique_ptr<backend> make_backend(const loop_options& opts, std::string& why) {
  backend_kind k = opts.backend == backend_kind::from_env ? from_env() : opts.backend;
  switch (k) {
    case backend_kind::epoll:
      why = "requested";
      return make_epoll_backend(opts);
    case backend_kind::io_uring:
#ifdef EDDY_HAVE_URING
      why = "requested";
      return make_uring_backend(opts);
#else
      throw std::runtime_error("eddy: io_uring requested but eddy was built without liburing (-Dio_uring)");
#endif
    default:
      break;
  }
#ifdef EDDY_HAVE_URING
  std::string reason;
  if (uring_usable(reason)) {
    try {
      why = "auto: io_uring available";
      return make_uring_backend(opts);
    } catch (const std::system_error& e) {
      if (is_resource_error(e.code().value())) throw;
      reason = e.what();
    }
  }
  why = "auto: falling back to epoll: " + reason;
  log_debug("%s", why.c_str());
  return make_epoll_backend(opts);
#else
  why = "auto: built without liburing";
  log_debug("%s", why.c_str());
  return make_epoll_backend(opts);
#endif
}

}  // namespace eddy::detail

namespace eddy {

bool backend_available(backend_kind k, std::string* why) {
  std::string reason;
  bool ok = true;
  switch (k) {
    case backend_kind::epoll:
    case backend_kind::automatic:
      break;
    case backend_kind::io_uring:
#ifdef EDDY_HAVE_URING
      try {
        ok = detail::uring_usable(reason);
      } catch (const std::exception& e) {
        ok = false;
        reason = e.what();
      }
#else
      ok = false;
      reason = "built without liburing";
#endif
      break;
    default:
      ok = false;
      reason = "from_env is not a backend";
  }
  if (why != nullptr) *why = reason;
  return ok;
}

}  // namespace eddy
