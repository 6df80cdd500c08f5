// eddy::interval: a periodic timer with a policy for missed ticks.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include <eddy/runtime/loop.hpp>
#include <eddy/runtime/time.hpp>

namespace eddy {

/// What an interval does when ticks were missed (the loop was stalled, or the
/// task did not call tick() in time), as tokio's `MissedTickBehavior`:
///  - `burst`: the missed ticks complete at once, one per tick() call, until the
///    schedule has caught up; ticks stay on the grid start + k·period;
///  - `delay`: the schedule restarts from now: the next tick is one period after
///    the late one completed;
///  - `skip`: the missed ticks are dropped; the next tick is the next grid point
///    after now.
/// A tick is missed when it completes more than 5 ms after its time (tokio's
/// figure: a loop turn's lateness is not a miss).
enum class missed_tick : unsigned char { burst, delay, skip };

/// A timer that completes every `period` (tokio's `interval`, asyncio has none).
/// The first tick completes at once (at `start`, if given); tick() returns the
/// time the tick was scheduled for, which with `burst` lets a caller see how late
/// it is.
///
/// **Thread safety:** one loop's thread only (it sleeps on the loop running tick).
/// **Cancel safety:** cancel-safe: a cancelled tick() consumes nothing; the next
/// call waits for the same tick.
///
/// ```cpp
/// eddy::interval every(1s, eddy::missed_tick::skip);
/// for (;;) {
///   co_await every.tick();
///   print_stats();
/// }
/// ```
class interval {
 public:
  /// Throws std::invalid_argument for a period that is not positive or is longer
  /// than a year.
  explicit interval(clock::duration period, missed_tick policy = missed_tick::burst,
                    clock::time_point start = clock::now())
      : period_(period), next_(start), policy_(policy) {
    if (period <= clock::duration::zero() || period > std::chrono::hours(24 * 366))
      throw std::invalid_argument("eddy::interval: the period must be positive and at most a year, got " +
                                  std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(period).count()) +
                                  " ns");
  }

  /// Completes at the next tick; returns the time it was scheduled for.
  task<clock::time_point> tick() {
    co_await sleep_until(next_);
    const clock::time_point scheduled = next_;
    const clock::time_point now = clock::now();
    if (now - scheduled <= std::chrono::milliseconds(5) || policy_ == missed_tick::burst) {
      next_ = scheduled + period_;
    } else if (policy_ == missed_tick::delay) {
      next_ = now + period_;
    } else {  // skip: the first grid point after now
      next_ = scheduled + period_ * ((now - scheduled) / period_ + 1);
    }
    co_return scheduled;
  }

  /// Restarts the schedule: the next tick is one period from now.
  void reset() noexcept { next_ = clock::now() + period_; }
  clock::duration period() const noexcept { return period_; }
  missed_tick policy() const noexcept { return policy_; }
  void set_policy(missed_tick p) noexcept { policy_ = p; }
  /// When the next tick is due.
  clock::time_point next_tick() const noexcept { return next_; }

 private:
  clock::duration period_;
  clock::time_point next_;
  missed_tick policy_;
};

}  // namespace eddy
