// The one table of backends, and backend selection in one place (DESIGN.md §4).
// A backend is a folder (io/uring, io/epoll, compat/ for libuv) and one row here:
// its kind, its name, a factory and a probe. EDDY_BACKEND or the loop option picks
// one by name; `automatic` walks the table in order, skipping a backend whose probe
// says no (io_uring_disabled, EPERM from seccomp, ENOSYS, missing opcodes) or whose
// construction fails for a reason other than resources, and logs why at debug
// level. A resource error (ENOMEM, EMFILE, ENFILE) is raised, never hidden behind
// a fallback.
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>

#include "io/backend.hpp"
#include "runtime/log.hpp"

namespace eddy::detail {

#ifdef EDDY_HAVE_URING
std::unique_ptr<backend> make_uring_backend(const backend_config& cfg);
bool uring_usable(std::string& why);
#endif
std::unique_ptr<backend> make_epoll_backend(const backend_config& cfg);
bool epoll_usable(std::string& why);
#ifdef EDDY_HAVE_LIBUV
std::unique_ptr<backend> make_uv_backend(const backend_config& cfg);
bool uv_usable(std::string& why);
#endif

namespace {

constexpr backend_entry table[] = {
#ifdef EDDY_HAVE_URING
    {backend_kind::io_uring, "io_uring", &make_uring_backend, &uring_usable},
#endif
    {backend_kind::epoll, "epoll", &make_epoll_backend, &epoll_usable},
#ifdef EDDY_HAVE_LIBUV
    {backend_kind::libuv, "libuv", &make_uv_backend, &uv_usable},
#endif
};

const backend_entry* find(backend_kind k) noexcept {
  for (const backend_entry& e : table)
    if (e.kind == k) return &e;
  return nullptr;
}

bool is_resource_error(int e) { return e == ENOMEM || e == EMFILE || e == ENFILE; }

backend_kind from_env() {
  const char* v = std::getenv("EDDY_BACKEND");
  if (v == nullptr || *v == '\0') return backend_kind::automatic;
  const std::optional<backend_kind> k = parse_backend(v);
  if (!k || *k == backend_kind::from_env)
    throw std::invalid_argument(std::string("EDDY_BACKEND must be one of ") + backend_names() +
                                "; got '" + v + "'");
  return *k;
}

[[noreturn]] void not_built(backend_kind k) {
  throw std::runtime_error("eddy: the " + std::string(backend_name(k)) +
                           " backend was requested but eddy was built without it");
}

}  // namespace

std::span<const backend_entry> backend_table() noexcept { return table; }

std::unique_ptr<backend> make_backend(backend_kind requested, const backend_config& cfg,
                                      std::string& why) {
  const backend_kind k = requested == backend_kind::from_env ? from_env() : requested;
  if (k != backend_kind::automatic) {
    const backend_entry* e = find(k);
    if (e == nullptr) not_built(k);
    why = "requested";
    return e->make(cfg);
  }
  std::string reasons;
  for (const backend_entry& e : table) {
    std::string reason;
    if (e.usable(reason)) {
      try {
        std::unique_ptr<backend> b = e.make(cfg);
        // A usable backend may still say something (epoll without epoll_pwait2).
        std::string notes = reasons;
        if (!reason.empty()) notes += (notes.empty() ? "" : "; ") + std::string(e.name) + ": " + reason;
        why = notes.empty() ? "auto: " + std::string(e.name) + " available"
                            : "auto: " + std::string(e.name) + " (" + notes + ")";
        if (!notes.empty()) log_debug("eddy: %s", why.c_str());
        return b;
      } catch (const std::system_error& err) {
        if (is_resource_error(err.code().value())) throw;
        reason = err.what();
      }
    }
    if (!reasons.empty()) reasons += "; ";
    reasons += std::string(e.name) + " not used: " + reason;
  }
  throw std::runtime_error("eddy: no backend can run here: " + reasons);
}

}  // namespace eddy::detail

namespace eddy {

std::string_view backend_name(backend_kind k) noexcept {
  switch (k) {
    case backend_kind::from_env: return "from_env";
    case backend_kind::automatic: return "auto";
    case backend_kind::io_uring: return "io_uring";
    case backend_kind::epoll: return "epoll";
    case backend_kind::libuv: return "libuv";
  }
  return "unknown";
}

std::optional<backend_kind> parse_backend(std::string_view name) noexcept {
  if (name == "auto") return backend_kind::automatic;
  if (name == "uring") return backend_kind::io_uring;
  for (backend_kind k : {backend_kind::io_uring, backend_kind::epoll, backend_kind::libuv})
    if (name == backend_name(k)) return k;
  return std::nullopt;
}

std::vector<backend_kind> backend_kinds() {
  std::vector<backend_kind> out;
  for (const detail::backend_entry& e : detail::backend_table()) out.push_back(e.kind);
  return out;
}

std::string backend_names() {
  std::string s = "auto";
  for (const detail::backend_entry& e : detail::backend_table()) s += ", " + std::string(e.name);
  return s;
}

bool backend_available(backend_kind k, std::string* why) {
  std::string reason;
  bool ok = false;
  if (k == backend_kind::automatic) {
    ok = true;
  } else if (const detail::backend_entry* e = detail::find(k)) {
    try {
      ok = e->usable(reason);
    } catch (const std::exception& ex) {
      reason = ex.what();
    }
  } else {
    reason = k == backend_kind::from_env ? "from_env is not a backend"
                                         : "eddy was built without the " +
                                               std::string(backend_name(k)) + " backend";
  }
  if (why != nullptr) *why = reason;
  return ok;
}

std::vector<backend_kind> available_backends() {
  std::vector<backend_kind> out;
  for (backend_kind k : backend_kinds())
    if (backend_available(k)) out.push_back(k);
  return out;
}

}  // namespace eddy
