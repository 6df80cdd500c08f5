#!/usr/bin/env python3
"""Tests for check_includes.py: it passes a tree that keeps the layer order, and fails,
naming file, line and rule, as soon as one wrong #include is added, both in a small
fixture (one case per rule) and in a copy of the real tree.

Usage: check_includes_test.py [ROOT]   (ROOT defaults to this repository)
"""

import contextlib
import io
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_includes  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

# A tree that follows every rule of docs/layers.md, one file per kind of file.
FIXTURE = {
    "runtime/log.hpp": "#pragma once\n#include <cstdio>\n",
    "runtime/log.cpp": '#include "runtime/log.hpp"\n',
    "include/eddy/io/detail/io_op.hpp": "#pragma once\n#include <cstdint>\n",
    "include/eddy/io/backend_kind.hpp": "#pragma once\n",
    "io/backend.hpp": (
        "#pragma once\n#include <eddy/io/backend_kind.hpp>\n"
        "#include <eddy/io/detail/io_op.hpp>\n"
    ),
    "io/backend_select.cpp": (
        '#include "io/backend.hpp"\n#include "io/uring/uring_backend.hpp"\n'
        '#include "io/epoll/epoll_backend.hpp"\n#include "compat/libuv/uv_backend.hpp"\n'
        '#include "runtime/log.hpp"\n'
    ),
    "io/readiness/engine.hpp": '#pragma once\n#include "io/backend.hpp"\n',
    "io/readiness/engine.cpp": '#include "engine.hpp"\n#include "runtime/log.hpp"\n',
    "io/epoll/epoll_backend.hpp": '#pragma once\n#include "io/readiness/engine.hpp"\n',
    "io/epoll/epoll_backend.cpp": (
        '#include "epoll_backend.hpp"\n#include "../backend.hpp"\n#include "compat/probe.hpp"\n'
    ),
    "io/uring/uring_backend.hpp": '#pragma once\n#include "io/backend.hpp"\n#include <liburing.h>\n',
    "io/uring/uring_backend.cpp": '#include "io/uring/uring_backend.hpp"\n#include "compat/probe.hpp"\n',
    "compat/probe.hpp": "#pragma once\n#include <eddy/io/backend_kind.hpp>\n",
    "compat/libuv/uv_backend.hpp": '#pragma once\n#include "io/readiness/engine.hpp"\n#include <uv.h>\n',
    "include/eddy/runtime/task.hpp": "#pragma once\n#include <coroutine>\n",
    "include/eddy/runtime/loop.hpp": (
        "#pragma once\n#include <eddy/io/backend_kind.hpp>\n#include <eddy/io/detail/io_op.hpp>\n"
        "#include <eddy/runtime/task.hpp>\n"
    ),
    "runtime/loop.cpp": (
        '#include <eddy/runtime/loop.hpp>\n#include "io/backend.hpp"\n#include "runtime/log.hpp"\n'
        "// #include <eddy/io/fd.hpp>   (a comment, not an include)\n"
        '/* #include "io/epoll/epoll_backend.hpp"\n   #include <eddy/sched/dns.hpp> */\n'
        "const char* s = \"// not a comment\"; int n = 1'000;\n"
    ),
    "include/eddy/io/fd.hpp": "#pragma once\n#include <eddy/runtime/loop.hpp>\n",
    "include/eddy/io/tcp.hpp": "#pragma once\n#include <eddy/io/fd.hpp>\n",
    "io/fd_ops.cpp": '#include <eddy/io/fd.hpp>\n#include "io/backend.hpp"\n',
    "io/net/socket_util.hpp": "#pragma once\n#include <eddy/io/fd.hpp>\n",
    "io/net/tcp.cpp": '#include <eddy/io/tcp.hpp>\n#include "io/net/socket_util.hpp"\n',
    "include/eddy/sched/dns.hpp": "#pragma once\n#include <eddy/runtime/task.hpp>\n",
    "include/eddy/sched/tcp_connect.hpp": (
        "#pragma once\n#include <eddy/io/tcp.hpp>\n#include <eddy/sched/dns.hpp>\n"
    ),
    "sched/async_fd.hpp": "#pragma once\n#include <eddy/io/fd.hpp>\n",
    "sched/async_fd.cpp": '#include "async_fd.hpp"\n#include "io/net/socket_util.hpp"\n',
    "sched/tcp_connect.cpp": "#include <eddy/sched/tcp_connect.hpp>\n",
    "include/eddy/eddy.hpp": "#pragma once\n#include <eddy/io/tcp.hpp>\n#include <eddy/sched/tcp_connect.hpp>\n",
    "samples/common/cli.hpp": "#pragma once\n#include <string>\n",
    "samples/echo_server.cpp": '#include <eddy/eddy.hpp>\n#include "common/cli.hpp"\n',
    "tests/io/net_support.hpp": "#pragma once\n#include <eddy/io/tcp.hpp>\n",
    # "io/..." here is tests/io/: the tests' own folder comes first in their path.
    "tests/io/tcp_test.cpp": '#include "io/net_support.hpp"\n#include <gtest/gtest.h>\n',
    "tests/sched/dns_test.cpp": '#include "pool_support.hpp"\n#include <eddy/sched/dns.hpp>\n',
    "tests/sched/pool_support.hpp": "#pragma once\n",
    "bench/micro/main.cpp": '#include <benchmark/benchmark.h>\n#include "percentiles.hpp"\n',
    "bench/micro/percentiles.hpp": "#pragma once\n",
    "python/module.cpp": "#include <Python.h>\n#include <eddy/eddy.hpp>\n",
}

# (file, include line appended to it, rule the checker must report).
WRONG = [
    ("io/backend.hpp", "#include <eddy/runtime/loop.hpp>", "layer-order"),
    ("io/net/tcp.cpp", "#include <eddy/sched/dns.hpp>", "layer-order"),
    ("io/net/tcp.cpp", '#include "eddy/sched/tcp_connect.hpp"', "layer-order"),
    ("include/eddy/runtime/loop.hpp", "#include <eddy/io/fd.hpp>", "layer-order"),
    ("runtime/log.cpp", "#include <eddy/io/detail/io_op.hpp>", "layer-order"),
    ("io/uring/uring_backend.cpp", "#include <eddy/runtime/task.hpp>", "layer-order"),
    ("runtime/loop.cpp", '#include "io/epoll/epoll_backend.hpp"', "backend-through-contract"),
    ("runtime/loop.cpp", '#include "io/readiness/engine.hpp"', "backend-through-contract"),
    ("io/net/tcp.cpp", '#include "io/uring/uring_backend.hpp"', "backend-through-contract"),
    ("sched/async_fd.cpp", '#include "compat/probe.hpp"', "backend-through-contract"),
    ("io/epoll/epoll_backend.cpp", '#include "io/uring/uring_backend.hpp"', "backends-apart"),
    ("io/uring/uring_backend.cpp", '#include "../epoll/epoll_backend.hpp"', "backends-apart"),
    ("compat/libuv/uv_backend.hpp", '#include "io/epoll/epoll_backend.hpp"', "backends-apart"),
    ("io/readiness/engine.cpp", '#include "io/epoll/epoll_backend.hpp"', "backends-apart"),
    ("io/backend.hpp", '#include "io/readiness/engine.hpp"', "contract-is-alone"),
    ("include/eddy/io/tcp.hpp", '#include "io/net/socket_util.hpp"', "public-uses-private"),
    ("samples/echo_server.cpp", '#include "runtime/log.hpp"', "client-uses-private"),
    ("tests/io/tcp_test.cpp", '#include "../../io/backend.hpp"', "client-uses-private"),
    ("samples/echo_server.cpp", '#include "../tests/io/net_support.hpp"', "client-uses-private"),
    ("include/eddy/eddy.hpp", '#include "../../sched/async_fd.hpp"', "client-uses-private"),
    ("python/module.cpp", '#include "sched/async_fd.hpp"', "client-uses-private"),
    ("sched/tcp_connect.cpp", "#include <eddy/sched/no_such_header.hpp>", "missing-header"),
    ("include/other/stray.hpp", "#pragma once", "no-layer"),
]


def write_tree(root, files):
    for path, text in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)


def append_line(root, path, line):
    """Appends `line` to `path` (creating it); returns the line number it got."""
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    text = ""
    if os.path.exists(full):
        with open(full, encoding="utf-8", errors="replace") as f:
            text = f.read()
    if text and not text.endswith("\n"):
        text += "\n"
    with open(full, "w", encoding="utf-8") as f:
        f.write(text + line + "\n")
    return text.count("\n") + 1


def run_checker(root):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = check_includes.main(["check_includes.py", root])
    return rc, out.getvalue()


class fixture_test(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="eddy-layers-")
        write_tree(self.dir, FIXTURE)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_a_tree_that_keeps_the_order_passes(self):
        rc, out = run_checker(self.dir)
        self.assertEqual(rc, 0, out)

    def test_a_build_directory_inside_the_tree_is_skipped(self):
        write_tree(self.dir, {"tests/build/meson-private/x": "", "tests/build/gen.cpp": '#include "io/backend.hpp"\n'})
        rc, out = run_checker(self.dir)
        self.assertEqual(rc, 0, out)

    def test_each_wrong_include_fails_with_its_file_line_and_rule(self):
        for path, include, rule in WRONG:
            with self.subTest(path=path, include=include):
                shutil.rmtree(self.dir)
                write_tree(self.dir, FIXTURE)
                line = append_line(self.dir, path, include)
                rc, out = run_checker(self.dir)
                self.assertEqual(rc, 1, out)
                self.assertIn("%s:%d: %s:" % (path, line, rule), out)
                self.assertEqual(len(out.strip().splitlines()), 2, out)  # it and the count


class real_tree_test(unittest.TestCase):
    """The same on a copy of the repository: whatever the tree's own state, one more
    wrong include is one more violation, reported where it was added."""

    root = ROOT

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="eddy-layers-tree-")
        for top in check_includes.LIBRARY_ROOTS + check_includes.CLIENT_ROOTS:
            src = os.path.join(self.root, top)
            if not os.path.isdir(src):
                continue
            for path in check_includes.source_files(self.root):
                if path.startswith(top + "/"):
                    dst = os.path.join(self.dir, path)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copyfile(os.path.join(self.root, path), dst)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_the_copy_reports_what_the_tree_reports(self):
        self.assertEqual(check_includes.check(self.dir), check_includes.check(self.root))

    def test_a_wrong_include_in_the_real_tree_fails(self):
        cases = [
            ("io/backend.hpp", "#include <eddy/runtime/loop.hpp>", "layer-order"),
            ("io/net/tcp.cpp", "#include <eddy/sched/dns.hpp>", "layer-order"),
            ("runtime/loop.cpp", '#include "io/epoll/epoll_backend.hpp"', "backend-through-contract"),
            ("samples/echo_server.cpp", '#include "../io/backend.hpp"', "client-uses-private"),
        ]
        for path, include, rule in cases:
            if not os.path.exists(os.path.join(self.dir, path)):
                continue  # e.g. a file renamed since; the fixture covers the rule
            if rule == "backend-through-contract" and not os.path.exists(
                os.path.join(self.dir, "io/epoll/epoll_backend.hpp")
            ):
                include = '#include "io/epoll/epoll_backend.cpp"'
            with self.subTest(path=path, include=include):
                before = check_includes.check(self.dir)
                saved = open(os.path.join(self.dir, path), encoding="utf-8", errors="replace").read()
                line = append_line(self.dir, path, include)
                try:
                    rc, out = run_checker(self.dir)
                    after = check_includes.check(self.dir)
                finally:
                    with open(os.path.join(self.dir, path), "w", encoding="utf-8") as f:
                        f.write(saved)
                self.assertEqual(rc, 1, out)
                self.assertIn("%s:%d: %s:" % (path, line, rule), out)
                self.assertEqual(len(after), len(before) + 1, out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[-1].startswith("-"):
        real_tree_test.root = os.path.abspath(sys.argv.pop())
    unittest.main(verbosity=2)
