// The part of `call<fn>(args...)` that every remote-call pool (process_pool,
// cluster_pool) shares in its header: the result type, encoding the arguments as the
// function's parameter types, and decoding the answer. Installed, not API.
// Thread safety: as the pool's `call` (its loop's thread). Cancel safety: finish_call
// passes the exchange's cancellation through (the pool's `call` says what a cancel does).
#pragma once

#include <eddy/runtime/task.hpp>
#include <eddy/sched/remote.hpp>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace eddy::detail {

// What `co_await pool.call<Fn>(...)` produces.
template <auto Fn>
using remote_result_t = std::remove_cvref_t<typename fn_traits<decltype(Fn)>::result>;

// The arguments of a call of Fn, converted to its parameter types and encoded now
// (so a caller may pass temporaries).
template <auto Fn, class... A>
std::vector<char> encode_call(A&&... args) {
  using Params = typename fn_traits<decltype(Fn)>::args;
  static_assert(sizeof...(A) == std::tuple_size_v<Params>,
                "eddy: pool.call<fn>(args...): wrong number of arguments for fn");
  std::vector<char> bytes;
  encode_as<Params>(bytes, std::index_sequence_for<A...>{}, std::forward<A>(args)...);
  return bytes;
}

// Awaits a pool's exchange (the answer's body, or what it throws: remote_error,
// the pool's own errors, cancelled_error) and decodes the body as R.
template <class R>
task<R> finish_call(task<std::vector<char>> exchange, const remote_entry* entry) {
  std::vector<char> body = co_await std::move(exchange);
  co_return decode_result<R>(*entry, body);
}

}  // namespace eddy::detail
