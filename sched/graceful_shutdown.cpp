// eddy::graceful_shutdown (include/eddy/sched/graceful_shutdown.hpp). drain():
//  1. a timer at the deadline notes how many connections are still open and
//     cancels them; a watcher cancels them too on a second signal;
//  2. the connections are joined (task_group::join waits for every child, the
//     cancelled ones included);
//  3. the timer and the watcher are stopped; finished = open at the start minus
//     cancelled.
#include <stdexcept>
#include <string>

#include <eddy/runtime/time.hpp>
#include <eddy/sched/graceful_shutdown.hpp>

namespace eddy {

graceful_shutdown::graceful_shutdown(std::initializer_list<int> signals) {
  if (signals.size() != 0) signals_.emplace(signals);
}

graceful_shutdown::~graceful_shutdown() = default;

task<void> graceful_shutdown::watch_signals() {
  const int sig = co_await signals_->wait();
  if (!stopping_.is_set()) signal_ = sig;
  stopping_.set();
}

task<int> graceful_shutdown::wait() {
  if (!stopping_.is_set() && signals_) {
    join_handle<void> watcher = spawn(watch_signals());
    std::exception_ptr error;
    try {
      co_await stopping_.wait();
    } catch (...) {
      error = std::current_exception();
    }
    watcher.cancel();
    try {
      co_await watcher;
    } catch (const cancelled_error&) {
    }
    if (error) std::rethrow_exception(error);
  } else {
    co_await stopping_.wait();
  }
  co_return signal_;
}

namespace {

struct drain_state {
  task_group* conns;
  std::size_t cancelled = 0;
  bool cut = false;
  bool second_signal = false;
  void cut_now() {
    if (cut) return;
    cut = true;
    cancelled = conns->size();
    conns->cancel();
  }
};

task<void> second_signal_watch(signal_set* sigs, drain_state* st) {
  (void)co_await sigs->wait();
  st->second_signal = !st->cut;
  st->cut_now();
}

}  // namespace

task<shutdown_result> graceful_shutdown::drain(clock::duration grace) {
  if (grace < clock::duration::zero() || grace > std::chrono::hours(24))
    throw std::invalid_argument("eddy::graceful_shutdown::drain: the grace period must be 0..1 day, got " +
                                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(grace).count()) +
                                " ms");
  stopping_.set();
  drain_state st{&conns_};
  const std::size_t open = conns_.size();
  loop& l = loop::current();
  timer_handle deadline = l.call_later(grace, [&st] { st.cut_now(); });
  join_handle<void> watcher;
  if (signals_) watcher = spawn(second_signal_watch(&*signals_, &st));
  std::exception_ptr error;
  try {
    co_await conns_.join();
  } catch (...) {
    error = std::current_exception();
  }
  deadline.cancel();
  if (watcher.valid()) {
    watcher.cancel();
    try {
      co_await watcher;
    } catch (const cancelled_error&) {
    }
  }
  if (error) std::rethrow_exception(error);
  shutdown_result r;
  r.cancelled = st.cancelled;
  r.finished = open - st.cancelled;
  r.second_signal = st.second_signal;
  co_return r;
}

}  // namespace eddy
