// What every backend on the readiness engine has in common (epoll, libuv): the
// engine itself, and the contract's I/O calls, which go straight to it. A
// readiness backend adds only its mechanism (watch/forget, and want for a
// level-triggered one), its wait and its wakeup.
#pragma once

#include <cstddef>

#include "io/backend.hpp"
#include "io/readiness/readiness_engine.hpp"

namespace eddy::detail {

class readiness_backend : public backend, protected readiness_mechanism {
 public:
  std::size_t in_flight() const noexcept override { return engine_.in_flight(); }
  const op_census& in_flight_ops() const noexcept override { return engine_.in_flight_ops(); }
  bool submit(io_op& op) override { return engine_.submit(op); }
  void cancel(io_op& op) noexcept override { engine_.cancel(op); }
  void close_now(int fd) noexcept override { (void)engine_.close_fd(fd); }
  buffer_ring* recv_buffers() override { return engine_.recv_buffers(); }
  // 64 blocks (1 MiB) stay for the next burst's first reads.
  void release_idle_memory() noexcept override { engine_.trim_buffers(64); }

 protected:
  // The engine only stores the mechanism here; it calls it once the derived
  // backend is built (on the first submit).
  explicit readiness_backend(bool level_triggered = false) : engine_(*this, level_triggered) {}

  readiness_engine engine_;
};

}  // namespace eddy::detail
