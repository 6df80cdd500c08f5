#!/usr/bin/env python3
"""Awaitables that do nothing unless awaited are [[nodiscard]]: dropping one
without co_await must fail to compile under -Werror=unused-result, and the
awaited form of the same line must compile (so the test can fail both ways).

usage: nodiscard_test.py INCLUDE_DIR COMPILER [COMPILER ARGS...]
"""
import os
import subprocess
import sys
import tempfile

PRELUDE = """
#include <eddy/eddy.hpp>
#include <chrono>
#include <span>
eddy::task<void> f(eddy::tcp_stream& s, std::span<const std::byte> buf, int fd,
                   eddy::event& ev, eddy::mutex& m, eddy::semaphore& sem) {
  (void)s; (void)buf; (void)fd; (void)ev; (void)m; (void)sem;
  %s;
  co_return;
}
"""

# Each line is a statement that, written without co_await, silently does nothing.
CASES = [
    "s.write_some(buf)",
    "eddy::sleep_for(std::chrono::milliseconds(1))",
    "eddy::yield_now()",
    "eddy::write(fd, buf)",
    "ev.wait()",
    "m.lock()",
    "sem.acquire()",
]


def compile_ok(cmd, inc, body):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.cpp")
        with open(src, "w") as f:
            f.write(PRELUDE % body)
        r = subprocess.run(cmd + ["-std=c++20", "-fsyntax-only", "-Werror=unused-result",
                                  "-I", inc, src], capture_output=True, text=True)
        return r.returncode == 0, r.stderr


def main():
    inc, cmd = sys.argv[1], sys.argv[2:]
    failed = 0
    for case in CASES:
        ok, err = compile_ok(cmd, inc, "(void)co_await " + case)
        if not ok:
            print(f"FAIL: `co_await {case};` does not compile:\n{err[-2000:]}")
            failed += 1
            continue
        ok, err = compile_ok(cmd, inc, case)
        if ok:
            print(f"FAIL: `{case};` without co_await compiles (not [[nodiscard]])")
            failed += 1
        else:
            print(f"ok: `{case};` without co_await is refused")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
