// when_all and when_any: structured combinators over tasks, built on task_group:
// every child has finished before either returns, whatever happens.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <eddy/runtime/outcome.hpp>
#include <eddy/runtime/task_group.hpp>

namespace eddy {

namespace detail {

template <class T>
using non_void_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
non_void_t<T> take(join_handle<T>& h) {
  if constexpr (std::is_void_v<T>) {
    h.result();
    return {};
  } else {
    return h.result();
  }
}

template <class V>
struct race_state {
  std::optional<V> value;
  std::exception_ptr error;
  std::size_t index = 0;
  task_group* g = nullptr;
  bool decided = false;

  void fail(std::exception_ptr e) noexcept {
    if (decided) return;
    decided = true;
    error = std::move(e);
    g->cancel();
  }
};

template <std::size_t I, class V, class T>
task<void> racer(task<T> t, race_state<V>* st) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      if (!st->decided) st->value.emplace(std::in_place_index<I>);
    } else {
      T v = co_await std::move(t);
      if (!st->decided) st->value.emplace(std::in_place_index<I>, std::move(v));
    }
    if (!st->decided) {
      st->decided = true;
      st->index = I;
      st->g->cancel();
    }
  } catch (const cancelled_error&) {
    // Lost the race, or the caller was cancelled: join() tells which.
  } catch (...) {
    st->fail(std::current_exception());
  }
}

template <class T>
task<void> index_racer(task<T> t, std::size_t i, race_state<non_void_t<T>>* st) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      if (!st->decided) st->value.emplace();
    } else {
      T v = co_await std::move(t);
      if (!st->decided) st->value.emplace(std::move(v));
    }
    if (!st->decided) {
      st->decided = true;
      st->index = i;
      st->g->cancel();
    }
  } catch (const cancelled_error&) {
  } catch (...) {
    st->fail(std::current_exception());
  }
}

template <class V, class... T, std::size_t... I>
void spawn_racers(task_group& g, race_state<V>* st, std::index_sequence<I...>, task<T>... ts) {
  (g.spawn(racer<I, V, T>(std::move(ts), st)).detach(), ...);
}

}  // namespace detail

/// Runs every task concurrently and returns all results, in argument order (void
/// results as std::monostate). The first failure cancels the others, and is
/// rethrown after all have finished (task_group semantics); the siblings' own
/// failures after it (often caused by that cancellation) are dropped, not reported
/// to the loop's exception handler, as asyncio.gather drops them. To get every
/// task's outcome instead, failures included, use when_all_settled.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** cancelling the caller cancels every task, waits for all, and
/// throws cancelled_error; results of tasks that had finished are dropped.
///
/// ```cpp
/// auto [a, b] = co_await eddy::when_all(fetch(x), fetch(y));
/// ```
template <class... T>
task<std::tuple<detail::non_void_t<T>...>> when_all(task<T>... ts) {
  task_group g;
  detail::task_group_access::quiet_later_failures(g);
  std::tuple<join_handle<T>...> hs{g.spawn(std::move(ts))...};
  co_await g.join();
  co_return std::apply([](auto&... h) { return std::tuple<detail::non_void_t<T>...>{detail::take(h)...}; }, hs);
}

/// when_all over a vector of tasks of one type: results in input order.
/// **Thread safety / cancel safety:** as the variadic when_all.
template <class T>
  requires(!std::is_void_v<T>)
task<std::vector<T>> when_all(std::vector<task<T>> ts) {
  task_group g;
  detail::task_group_access::quiet_later_failures(g);
  std::vector<join_handle<T>> hs;
  hs.reserve(ts.size());
  for (auto& t : ts) hs.push_back(g.spawn(std::move(t)));
  co_await g.join();
  std::vector<T> out;
  out.reserve(hs.size());
  for (auto& h : hs) out.push_back(h.result());
  co_return out;
}

/// when_all over a vector of task<void>.
/// **Thread safety / cancel safety:** as the variadic when_all.
inline task<void> when_all(std::vector<task<void>> ts) {
  task_group g;
  detail::task_group_access::quiet_later_failures(g);
  for (auto& t : ts) g.spawn(std::move(t)).detach();
  co_await g.join();
}

namespace detail {

template <class T>
task<void> settle_into(task<T> t, std::optional<outcome<T>>* out) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      out->emplace(std::in_place);
    } else {
      out->emplace(std::in_place, co_await std::move(t));
    }
  } catch (...) {
    out->emplace(std::current_exception());
  }
}

}  // namespace detail

/// Runs every task concurrently until each has finished, whatever the others do,
/// and returns every outcome in argument order (asyncio's
/// `gather(..., return_exceptions=True)`, tokio's `join_all` over Results,
/// JavaScript's `Promise.allSettled`). A failure cancels nothing and is never
/// reported as unhandled: it is in its outcome.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** cancelling the caller cancels every task, waits for all, and
/// throws cancelled_error; the outcomes are dropped.
///
/// ```cpp
/// auto [a, b] = co_await eddy::when_all_settled(fetch(x), fetch(y));
/// if (!a.ok()) std::fprintf(stderr, "x: %s\n", a.message().c_str());
/// ```
template <class... T>
task<std::tuple<outcome<T>...>> when_all_settled(task<T>... ts) {
  std::tuple<std::optional<outcome<T>>...> out;
  task_group g;
  std::apply([&](auto&... o) { (g.spawn(detail::settle_into<T>(std::move(ts), &o)).detach(), ...); }, out);
  co_await g.join();
  co_return std::apply([](auto&... o) { return std::tuple<outcome<T>...>{std::move(*o)...}; }, out);
}

/// when_all_settled over a vector of tasks of one type: outcomes in input order.
/// **Thread safety / cancel safety:** as the variadic when_all_settled.
template <class T>
task<std::vector<outcome<T>>> when_all_settled(std::vector<task<T>> ts) {
  std::vector<std::optional<outcome<T>>> slots(ts.size());
  task_group g;
  for (std::size_t i = 0; i < ts.size(); ++i) g.spawn(detail::settle_into<T>(std::move(ts[i]), &slots[i])).detach();
  co_await g.join();
  std::vector<outcome<T>> out;
  out.reserve(slots.size());
  for (auto& o : slots) out.push_back(std::move(*o));
  co_return out;
}

/// Runs every task concurrently; the first to finish (with a value or an
/// exception) wins, the rest are cancelled and awaited. Returns the winner's value
/// as a variant whose index() is the winner's position; rethrows its exception if
/// it failed. Throws std::invalid_argument when given no task.
///
/// **Thread safety:** loop thread only.
/// **Cancel safety:** cancelling the caller cancels every task, waits, and throws
/// cancelled_error.
///
/// ```cpp
/// auto r = co_await eddy::when_any(read_reply(), fallback_after(1s));
/// if (r.index() == 0) use(std::get<0>(r));
/// ```
template <class... T>
task<std::variant<detail::non_void_t<T>...>> when_any(task<T>... ts) {
  static_assert(sizeof...(T) > 0, "eddy::when_any needs at least one task");
  using V = std::variant<detail::non_void_t<T>...>;
  task_group g;
  detail::race_state<V> st;
  st.g = &g;
  detail::spawn_racers<V>(g, &st, std::index_sequence_for<T...>{}, std::move(ts)...);
  co_await g.join();
  if (st.error) std::rethrow_exception(st.error);
  co_return std::move(*st.value);
}

/// when_any over a vector: returns {winner index, value} (for task<void>, the
/// value is std::monostate). Throws std::invalid_argument for an empty vector.
/// **Thread safety / cancel safety:** as the variadic when_any.
template <class T>
task<std::pair<std::size_t, detail::non_void_t<T>>> when_any(std::vector<task<T>> ts) {
  if (ts.empty()) throw std::invalid_argument("eddy::when_any: needs at least one task");
  task_group g;
  detail::race_state<detail::non_void_t<T>> st;
  st.g = &g;
  for (std::size_t i = 0; i < ts.size(); ++i) g.spawn(detail::index_racer<T>(std::move(ts[i]), i, &st)).detach();
  co_await g.join();
  if (st.error) std::rethrow_exception(st.error);
  co_return std::pair<std::size_t, detail::non_void_t<T>>{st.index, std::move(*st.value)};
}

}  // namespace eddy
