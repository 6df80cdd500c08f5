// eddy::run: the program entry point.
#pragma once

#include <utility>

#include <eddy/runtime/loop.hpp>

namespace eddy {

/// Makes a loop, runs `main` to completion, closes the loop (cancelling and
/// finishing every task still alive) and returns main's value or rethrows its
/// exception.
///
/// **Thread safety:** call from the thread that should run the loop; any number of
/// threads may each run their own.
/// **Cancel safety:** n/a (not awaitable).
///
/// ```cpp
/// int main() { return eddy::run(async_main()); }
/// ```
template <class T>
T run(task<T> main, loop_options opts = {}) {
  loop l(opts);
  if constexpr (std::is_void_v<T>) {
    l.run(std::move(main));
    l.close();
  } else {
    T v = l.run(std::move(main));
    l.close();
    return v;
  }
}

}  // namespace eddy
