#pragma once

#include <coroutine>
#include <type_traits>
#include <utility>

namespace eddy::detail {

template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
    return std::forward<A>(a).operator co_await();
  } else if constexpr (requires { operator co_await(std::forward<A>(a)); }) {
    return operator co_await(std::forward<A>(a));
  } else {
    return std::forward<A>(a);
  }
}

/// The type `co_await std::declval<A>()` produces.
template <class A>
using await_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

/// Recovers the enclosing object from a pointer to one of its members.
template <class Outer, class Member>
Outer* outer_of(Member* m, Member Outer::*field) noexcept {
  const auto off = reinterpret_cast<std::size_t>(&(static_cast<Outer*>(nullptr)->*field));
  return reinterpret_cast<Outer*>(reinterpret_cast<char*>(m) - off);
}

}  // namespace eddy::detail
