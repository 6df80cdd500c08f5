// eddy::probe_kernel_features: the compat/ probes, gathered for users
// (<eddy/io/kernel_features.hpp>, samples/eddy_info).
#include <eddy/io/kernel_features.hpp>

#include <utility>

#include "compat/kernel_probe.hpp"

namespace eddy::detail {
#ifdef EDDY_HAVE_LIBUV
bool uv_usable(std::string& why);
std::string uv_version();
#endif
}  // namespace eddy::detail

namespace eddy {

kernel_features probe_kernel_features() {
  kernel_features f;
  f.kernel_release = detail::running_kernel().release;
  const detail::uring_probe u = detail::probe_uring();
  f.io_uring = u.usable;
  f.io_uring_why = u.why;
  f.uring_single_issuer = u.single_issuer;
  f.uring_defer_taskrun = u.defer_taskrun;
  f.uring_multishot_accept = u.multishot_accept;
  f.uring_multishot_recv = u.multishot_recv;
  f.uring_buffer_ring = u.buffer_ring;
  f.uring_cancel_by_fd = u.cancel_by_fd;
  detail::epoll_probe e = detail::probe_epoll();
  f.epoll = e.usable;
  f.epoll_pwait2 = e.pwait2;
  f.epoll_why = std::move(e.why);
#ifdef EDDY_HAVE_LIBUV
  f.libuv = detail::uv_usable(f.libuv_why);
  f.libuv_version = detail::uv_version();
#else
  f.libuv_why = "eddy was built without libuv (meson -Dlibuv=disabled, or libuv1-dev missing)";
#endif
  return f;
}

}  // namespace eddy
