// eddy_info: which backend a loop gets here, why each other one was or was not
// chosen, and what the kernel offers (the compat/ probes). Honours EDDY_BACKEND.
//
//   build/samples/eddy_info [--help | --version]
//
// It also prints eddy's and liburing's versions and the limits that decide what a
// server can do here: open files (one per connection), locked memory (io_uring
// rings and buffer rings count against it on kernels before 5.12) and
// /proc/sys/kernel/io_uring_disabled (1: only root or the io_uring group; 2: none).
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>

#include <eddy/eddy.hpp>

namespace {

#ifndef EDDY_VERSION
#define EDDY_VERSION "unknown"
#endif
#ifndef EDDY_LIBURING_VERSION
#define EDDY_LIBURING_VERSION ""
#endif

const char* yn(bool b) { return b ? "yes" : "no"; }

std::string limit_text(int resource) {
  rlimit rl{};
  if (::getrlimit(resource, &rl) != 0) return "unknown";
  auto one = [](rlim_t v) { return v == RLIM_INFINITY ? std::string("unlimited") : std::to_string(v); };
  return one(rl.rlim_cur) + " (hard " + one(rl.rlim_max) + ")";
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc > 1) {
    if (std::strcmp(argv[1], "--version") == 0) {
      std::printf("eddy_info (eddy %s)\n", EDDY_VERSION);
      return 0;
    }
    const bool help = std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0;
    std::fprintf(help ? stdout : stderr,
                 "%susage: eddy_info [--help | --version]\n"
                 "Prints the backend a loop gets here (EDDY_BACKEND is honoured) and why, every\n"
                 "backend's availability, the kernel's features, eddy's and liburing's versions\n"
                 "and the limits that matter to a server (open files, locked memory,\n"
                 "io_uring_disabled).\n",
                 help ? "" : "eddy_info: unknown argument\n");
    return help ? 0 : 2;
  }
  const eddy::kernel_features f = eddy::probe_kernel_features();
  std::printf("eddy %s, liburing %s\n", EDDY_VERSION,
              *EDDY_LIBURING_VERSION ? EDDY_LIBURING_VERSION : "(not built with it)");
  std::printf("kernel %s\n", f.kernel_release.c_str());
  std::string disabled = "absent (kernel before 6.6: io_uring allowed)";
  if (std::ifstream in("/proc/sys/kernel/io_uring_disabled"); in) {
    int v = -1;
    in >> v;
    disabled = std::to_string(v) + (v == 0 ? " (allowed)" : v == 1 ? " (root or io_uring group only)" : " (disabled)");
  }
  std::printf("limits: open files %s, locked memory %s, io_uring_disabled %s\n\n",
              limit_text(RLIMIT_NOFILE).c_str(), limit_text(RLIMIT_MEMLOCK).c_str(), disabled.c_str());

  // backend_kind::from_env: EDDY_BACKEND, or auto. When no backend can run, say
  // so and still print what the probes found.
  std::unique_ptr<eddy::loop> lp;
  try {
    lp = std::make_unique<eddy::loop>();
  } catch (const std::runtime_error& e) {
    std::printf("chosen backend: none (%s)\n", e.what());
  }
  const eddy::backend_kind chosen = lp ? lp->backend() : eddy::backend_kind::automatic;
  const std::string chosen_name(lp ? lp->backend_name() : "none");
  if (lp) std::printf("chosen backend: %s (%s)\n", chosen_name.c_str(), lp->backend_reason().c_str());
  std::string order;
  for (eddy::backend_kind k : eddy::backend_kinds())
    order += (order.empty() ? "" : " -> ") + std::string(eddy::backend_name(k));
  std::printf("auto tries: %s\n\n", order.c_str());

  bool before_chosen = true;
  for (eddy::backend_kind k : eddy::backend_kinds()) {
    const std::string name(eddy::backend_name(k));
    std::string why;
    const bool usable = eddy::backend_available(k, &why);
    if (k == chosen) {
      std::printf("  %-9s chosen\n", name.c_str());
      before_chosen = false;
    } else if (!usable) {
      std::printf("  %-9s not usable: %s\n", name.c_str(), why.c_str());
    } else if (before_chosen && lp) {
      std::printf("  %-9s usable, not chosen: EDDY_BACKEND asked for another\n", name.c_str());
    } else {
      std::printf("  %-9s usable, not chosen: %s comes first\n", name.c_str(), chosen_name.c_str());
    }
  }

  std::printf("\nio_uring: %s%s%s\n", yn(f.io_uring), f.io_uring ? "" : " -- ",
              f.io_uring ? "" : f.io_uring_why.c_str());
  if (f.io_uring) {
    std::printf("  SINGLE_ISSUER %s, DEFER_TASKRUN %s\n", yn(f.uring_single_issuer),
                yn(f.uring_defer_taskrun));
    std::printf("  multishot accept %s, multishot recv %s, provided buffer ring %s, cancel by fd %s\n",
                yn(f.uring_multishot_accept), yn(f.uring_multishot_recv), yn(f.uring_buffer_ring),
                yn(f.uring_cancel_by_fd));
  }
  std::printf("epoll: %s%s%s\n", yn(f.epoll), f.epoll_why.empty() ? "" : " -- ", f.epoll_why.c_str());
  std::printf("libuv: %s%s%s%s%s\n", yn(f.libuv), f.libuv_version.empty() ? "" : " (",
              f.libuv_version.c_str(), f.libuv_version.empty() ? "" : ")",
              f.libuv ? "" : (" -- " + f.libuv_why).c_str());
  if (lp) lp->close();
  return lp ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "eddy_info: %s\n", e.what());
  return 1;
}
