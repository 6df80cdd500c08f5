// A loop_group's metrics and task dumps, gathered on each loop's own thread.
#pragma once

#include <string>

#include <eddy/runtime/loop_group.hpp>
#include <eddy/runtime/spawn_on.hpp>

namespace eddy {

namespace detail {
inline task<loop_metrics> metrics_here() { co_return loop::current().metrics(); }
inline task<std::string> dump_here() { co_return loop::current().dump_tasks(); }
}  // namespace detail

/// The sum of every loop's metrics in `g` (loop_metrics::operator+=; `loops`
/// says how many). Each snapshot is taken on its own loop's thread, so it is safe
/// while those loops run; they are taken one after another, not at one instant.
///
/// **Thread safety:** from a task on any loop of the group (or another running
/// loop); the group must be running.
/// **Cancel safety:** cancel-safe: nothing is changed by a snapshot.
///
/// ```cpp
/// eddy::loop_metrics all = co_await eddy::group_metrics(group);
/// std::printf("%s\n", all.summary().c_str());
/// ```
inline task<loop_metrics> group_metrics(const loop_group& g) {
  loop_metrics sum;
  sum.loops = 0;
  for (std::size_t i = 0; i < g.size(); ++i) sum += co_await spawn_on(g.handle(i), detail::metrics_here());
  co_return sum;
}

/// Every loop's task dump (loop::dump_tasks), each taken on its own loop's
/// thread, one after another. Same thread and cancel safety as group_metrics.
///
/// ```cpp
/// std::fputs((co_await eddy::group_dump_tasks(group)).c_str(), stderr);
/// ```
inline task<std::string> group_dump_tasks(const loop_group& g) {
  std::string all;
  for (std::size_t i = 0; i < g.size(); ++i) all += co_await spawn_on(g.handle(i), detail::dump_here());
  co_return all;
}

}  // namespace eddy
