#!/usr/bin/env python3
"""Counts test cases from meson's JUnit logs (gtest cases one by one) and prints
the suite's closing line: 'N passed, N failed' (', N skipped' when some skipped).

usage: summarize_tests.py RUN_RESULT... where RUN_RESULT is DIR:EXITCODE
"""
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
failures = []
for arg in sys.argv[1:]:
    d, _, rc = arg.rpartition(":")
    rc = int(rc)
    run_failed = 0
    try:
        root = ET.parse(f"{d}/meson-logs/testlog.junit.xml").getroot()
    except (OSError, ET.ParseError):
        root = None
    if root is not None:
        for suite in root.iter("testsuite"):
            for case in suite.iter("testcase"):
                name = f"{d}: {case.get('classname', '')}.{case.get('name', '')}"
                if case.find("failure") is not None or case.find("error") is not None:
                    run_failed += 1
                    failures.append(name)
                elif case.find("skipped") is not None:
                    skipped += 1
                else:
                    passed += 1
    if rc != 0 and run_failed == 0:
        run_failed = 1  # a crash or timeout that left no failing case behind
        failures.append(f"{d}: meson test exited {rc}")
    failed += run_failed

for f in failures:
    print(f"FAILED {f}")
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed else 0)
