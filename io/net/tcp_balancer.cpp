// eddy::tcp_balancer (include/eddy/io/tcp_balancer.hpp).
//
// Load accounting: the accepting loop increments loads_[i] when it picks loop i, so
// two connections accepted back to back never both see the same idle loop; the
// connection object decrements it on loop i when the connection is done with. A
// connection lost on the way (the inbox closed) is uncounted where it is dropped.
#include <stdexcept>
#include <string>

#include <eddy/io/tcp_balancer.hpp>

#include "io/net/socket_util.hpp"

namespace eddy {

tcp_balancer::tcp_balancer(std::size_t loops, std::size_t backlog) {
  if (loops == 0 || loops > 1024)
    throw std::invalid_argument("eddy::tcp_balancer: loops must be 1..1024, got " + std::to_string(loops));
  if (backlog == 0 || backlog > (std::size_t{1} << 20))
    throw std::invalid_argument("eddy::tcp_balancer: backlog must be 1..2^20, got " + std::to_string(backlog));
  loads_ = std::shared_ptr<std::atomic<std::size_t>[]>(new std::atomic<std::size_t>[loops]);
  for (std::size_t i = 0; i < loops; ++i) {
    loads_[i].store(0, std::memory_order_relaxed);
    auto [tx, rx] = make_loop_channel<unique_fd>(backlog);
    senders_.push_back(std::move(tx));
    receivers_.push_back(std::move(rx));
  }
}

tcp_balancer::~tcp_balancer() { close(); }

std::size_t tcp_balancer::least_loaded() const noexcept {
  std::size_t best = 0;
  std::size_t best_load = loads_[0].load(std::memory_order_relaxed);
  for (std::size_t i = 1; i < senders_.size(); ++i) {
    const std::size_t l = loads_[i].load(std::memory_order_relaxed);
    if (l < best_load) {
      best = i;
      best_load = l;
    }
  }
  return best;
}

task<void> tcp_balancer::accept_from(tcp_listener& listener) {
  while (!closed_.load(std::memory_order_acquire)) {
    tcp_stream s = co_await listener.accept();
    if (closed_.load(std::memory_order_acquire)) co_return;  // s closes here
    const std::size_t i = least_loaded();
    loads_[i].fetch_add(1, std::memory_order_relaxed);
    try {
      co_await senders_[i].send(s.release());
    } catch (...) {
      loads_[i].fetch_sub(1, std::memory_order_relaxed);  // closed or cancelled: the fd is closed
      if (closed_.load(std::memory_order_acquire)) co_return;
      throw;
    }
  }
}

task<std::optional<tcp_balancer::connection>> tcp_balancer::next(std::size_t i) {
  if (i >= receivers_.size())
    throw std::out_of_range("eddy::tcp_balancer::next: loop " + std::to_string(i) + " of " +
                            std::to_string(receivers_.size()));
  std::optional<unique_fd> fd = co_await receivers_[i].recv();
  if (!fd) co_return std::nullopt;
  co_return std::optional<connection>(
      std::in_place, detail::wrap_own_stream<tcp_stream>(std::move(*fd)), loads_, i);
}

std::size_t tcp_balancer::open(std::size_t i) const {
  if (i >= senders_.size())
    throw std::out_of_range("eddy::tcp_balancer::open: loop " + std::to_string(i) + " of " +
                            std::to_string(senders_.size()));
  return loads_[i].load(std::memory_order_relaxed);
}

void tcp_balancer::close() noexcept {
  closed_.store(true, std::memory_order_release);
  for (auto& tx : senders_) {
    try {
      tx.close();
    } catch (...) {
    }
  }
}

}  // namespace eddy
