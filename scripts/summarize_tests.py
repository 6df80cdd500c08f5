#!/usr/bin/env python3
"""Counts test cases from meson's JUnit logs (gtest cases one by one) and prints
the suite's closing line: 'N passed, N failed' (', N skipped' when some skipped).
Before it, one line per build directory counts the cases parameterized over
backends (gtest names ending in /io_uring, /epoll, /libuv), backend by backend:
every backend should run the same number (passed + skipped: a backend may skip a
case, saying why), and a difference is flagged; the uring-baseline suite (io_uring
as before Linux 6.1) is counted on its own.

usage: summarize_tests.py RUN_RESULT... where RUN_RESULT is DIR:EXITCODE
"""
import sys
import xml.etree.ElementTree as ET

BACKENDS = ("io_uring", "epoll", "libuv", "io_uring-baseline")

passed = failed = skipped = 0
failures = []
per_backend_lines = []
for arg in sys.argv[1:]:
    d, _, rc = arg.rpartition(":")
    rc = int(rc)
    run_failed = 0
    per = {}  # backend -> [passed, failed]
    try:
        root = ET.parse(f"{d}/meson-logs/testlog.junit.xml").getroot()
    except (OSError, ET.ParseError):
        root = None
    if root is not None:
        for suite in root.iter("testsuite"):
            for case in suite.iter("testcase"):
                name = f"{d}: {case.get('classname', '')}.{case.get('name', '')}"
                backend = case.get("name", "").rpartition("/")[2]
                # The uring-baseline suite reruns some io suites on io_uring as on
                # kernels before 6.1: counted on its own, not as io_uring's.
                if backend == "io_uring" and "uring-baseline" in suite.get("name", ""):
                    backend = "io_uring-baseline"
                counts = per.setdefault(backend, [0, 0, 0]) if backend in BACKENDS else [0, 0, 0]
                if case.find("failure") is not None or case.find("error") is not None:
                    run_failed += 1
                    counts[1] += 1
                    failures.append(name)
                elif case.find("skipped") is not None:
                    skipped += 1
                    counts[2] += 1
                else:
                    passed += 1
                    counts[0] += 1
    if rc != 0 and run_failed == 0:
        run_failed = 1  # a crash or timeout that left no failing case behind
        failures.append(f"{d}: meson test exited {rc}")
    failed += run_failed
    if per:
        parts = [f"{b} {per[b][0]} passed" + (f" {per[b][1]} failed" if per[b][1] else "") +
                 (f" {per[b][2]} skipped" if per[b][2] else "")
                 for b in BACKENDS if b in per]
        # A case a backend skips (saying why) still counts as run there.
        same = len({sum(v) for b, v in per.items() if b != "io_uring-baseline"}) == 1
        per_backend_lines.append(f"{d}: per backend: " + ", ".join(parts) +
                                 ("" if same else "  <-- counts differ"))

for line in per_backend_lines:
    print(line)
for f in failures:
    print(f"FAILED {f}")
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed else 0)
