#!/usr/bin/env python3
"""What a new user writes first must compile, warning-free, with nothing but
#include <eddy/eddy.hpp> (issue 13, points 1, 3, 5 and 7):

  - the umbrella header brings sched/ too: to_thread, run_cpu, process_pool,
    EDDY_REMOTE, signal_set, resolve, tcp_connect, subprocess;
  - accept_with_peer unpacks into (stream, peer);
  - write_all takes a std::string, read_exact_string returns one,
    semaphore::scoped_acquire returns a permit;
  - the example in task_group.hpp's comment, taken from the header itself,
    compiles under -Wall -Wextra -Werror; and the line it warns against
    (dropping spawn's join handle) still warns, so the check can fail.

usage: usability_test.py INCLUDE_DIR COMPILER [COMPILER ARGS...]
"""
import os
import re
import subprocess
import sys
import tempfile

FLAGS = ["-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]

UMBRELLA = r"""
#include <eddy/eddy.hpp>
#include <chrono>
#include <string>
#include <vector>

static int square(int x) { return x * x; }
EDDY_REMOTE(square);
eddy::task<int> square_on_thread(int x) { co_return co_await eddy::to_thread(square, x); }

eddy::task<void> everything(eddy::tcp_listener& l, eddy::stream& st, eddy::semaphore& sem) {
  // point 1: sched/ through the umbrella header
  int a = co_await eddy::to_thread(square, 3);
  int b = co_await eddy::run_cpu(square, 4);
  eddy::process_pool pool;
  int c = co_await pool.call<square>(5);
  auto addrs = co_await eddy::resolve("localhost", "80");
  eddy::signal_set sigs{SIGINT};
  eddy::tcp_stream conn = co_await eddy::tcp_connect("localhost", 80);
  (void)a; (void)b; (void)c; (void)addrs; (void)sigs;
  // point 3: the peer's address with the stream
  auto [s, peer] = co_await l.accept_with_peer();
  std::string who = peer.to_string();
  // point 5: text in and out, and a scoped permit
  std::string reply = "hello " + who + "\n";
  co_await s.write_all(reply);
  co_await conn.write_all("literal\n");
  std::string line = co_await st.read_line();
  std::string body = co_await st.read_exact_string(16);
  {
    auto permit = co_await sem.scoped_acquire();
    (void)permit;
  }
  // point 2 and 4: the set that does not fail together, every outcome
  eddy::join_set<int> set;
  set.spawn(square_on_thread(6));
  while (auto o = co_await set.next()) (void)o->ok();
  auto [x, y] = co_await eddy::when_all_settled(square_on_thread(1), square_on_thread(2));
  (void)x.failed(); (void)y.message();
  co_await eddy::with_timeout(std::chrono::seconds(1), st.read_line(), "reading a line");
  (void)line; (void)body;
}
"""

EXAMPLE_WRAPPER = r"""
#include <eddy/eddy.hpp>
struct url {};
eddy::task<int> fetch(url) { co_return 1; }
eddy::task<void> log_visit(url) { co_return; }
eddy::task<int> example(url x) {
%s
  co_return n;
}
"""


JOIN_SET_WRAPPER = r"""
#include <eddy/eddy.hpp>
#include <cstdio>
eddy::task<void> serve(eddy::tcp_stream) { co_return; }
eddy::task<void> example(eddy::tcp_listener& listener) {
%s
}
"""


def compile_ok(cmd, inc, source):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.cpp")
        with open(src, "w") as f:
            f.write(source)
        r = subprocess.run(cmd + FLAGS + ["-I", inc, src], capture_output=True, text=True)
        return r.returncode == 0, r.stderr


def header_example(inc, header, before):
    """The ```cpp block of the doc comment that precedes `before` in `header`."""
    text = open(os.path.join(inc, header)).read()
    end = text.index(before)
    start = text.rindex("/// ```cpp", 0, end)
    block = text[start:end].split("\n")[1:]
    lines = []
    for ln in block:
        if ln.startswith("/// ```"):
            break
        lines.append(re.sub(r"^///\s?", "", ln))
    return "\n".join(lines)


def skip_outside_release():
    """These checks do not depend on the build: run them once, in the release build."""
    kind = os.environ.get("EDDY_COMPILE_CHECKS_BUILDTYPE", "release:none")
    if kind not in ("release:none", "release:"):
        print(f"SKIP: build-independent check, run in the release build (this one: {kind})")
        sys.exit(77)


def main():
    skip_outside_release()
    inc, cmd = sys.argv[1], sys.argv[2:]
    failed = 0

    ok, err = compile_ok(cmd, inc, UMBRELLA)
    if ok:
        print("ok: a program using runtime/, io/ and sched/ through <eddy/eddy.hpp> compiles warning-free")
    else:
        print("FAIL: the umbrella-header program does not compile warning-free:\n" + err[-4000:])
        failed += 1

    example = header_example(inc, "eddy/runtime/task_group.hpp", "class task_group {")
    body = "  " + example.strip().replace("\n", "\n  ")
    if "with_task_group" not in example:
        print("FAIL: no with_task_group example found in task_group.hpp")
        failed += 1
    else:
        ok, err = compile_ok(cmd, inc, EXAMPLE_WRAPPER % body)
        if ok:
            print("ok: task_group.hpp's example compiles under -Wall -Wextra -Werror")
        else:
            print("FAIL: task_group.hpp's example does not compile cleanly:\n" + body + "\n" + err[-3000:])
            failed += 1

    server = header_example(inc, "eddy/runtime/join_set.hpp", "template <class T = void>\nclass join_set")
    ok, err = compile_ok(cmd, inc, JOIN_SET_WRAPPER % ("  " + server.strip().replace("\n", "\n  ")))
    if "join_set" in server and ok:
        print("ok: join_set.hpp's server example compiles under -Wall -Wextra -Werror")
    else:
        print("FAIL: join_set.hpp's example does not compile cleanly:\n" + server + "\n" + err[-3000:])
        failed += 1

    dropped = """  int n = co_await eddy::with_task_group([&](eddy::task_group& g) -> eddy::task<int> {
    g.spawn(fetch(x));
    co_return 0;
  });"""
    ok, _ = compile_ok(cmd, inc, EXAMPLE_WRAPPER % dropped)
    if ok:
        print("FAIL: dropping spawn's join handle compiles without a warning: the check above proves nothing")
        failed += 1
    else:
        print("ok: dropping spawn's join handle still warns")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
