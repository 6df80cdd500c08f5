// eddy_info: which backend a loop gets here, why each other one was or was not
// chosen, and what the kernel offers (the compat/ probes). Honours EDDY_BACKEND.
//
//   build/samples/eddy_info
#include <cstdio>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>

#include <eddy/eddy.hpp>

namespace {

const char* yn(bool b) { return b ? "yes" : "no"; }

}  // namespace

int main() try {
  const eddy::kernel_features f = eddy::probe_kernel_features();
  std::printf("kernel %s\n\n", f.kernel_release.c_str());

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
  std::printf("epoll: %s%s%s\n", yn(f.epoll), f.epoll ? "" : " -- ", f.epoll ? "" : f.epoll_why.c_str());
  std::printf("libuv: %s%s%s%s%s\n", yn(f.libuv), f.libuv_version.empty() ? "" : " (",
              f.libuv_version.c_str(), f.libuv_version.empty() ? "" : ")",
              f.libuv ? "" : (" -- " + f.libuv_why).c_str());
  if (lp) lp->close();
  return lp ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "eddy_info: %s\n", e.what());
  return 1;
}
