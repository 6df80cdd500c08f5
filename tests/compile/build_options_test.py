#!/usr/bin/env python3
"""The build builds what was asked for (issue 13, point 9), checked on throwaway
configurations of this source tree (configured, never built):

  - -Dbenchmarks=disabled defines no target from bench/ (no micro-suite, no load
    generator, no reference server);
  - with benchmarks on (auto), bench/ is there, and so are the two targets
    scripts/demo builds (samples/echo_server and bench/echo_load): the demo
    names them, so a rename must fail here rather than in the demo;
  - the files the warning was in compile warning-free (-Wall -Wextra -Werror).

usage: build_options_test.py SOURCE_ROOT MESON COMPILER [COMPILER ARGS...]
"""
import json
import os
import subprocess
import sys
import tempfile

DEMO_TARGETS = ["samples/echo_server", "bench/echo_load"]
WARNING_FREE = ["tests/io/emfile_test.cpp", "samples/chat_server.cpp", "samples/parallel_hasher.cpp",
                "samples/http_client.cpp"]


def targets(src, meson, *options):
    with tempfile.TemporaryDirectory() as d:
        build = os.path.join(d, "b")
        r = subprocess.run([meson, "setup", build, src, "-Dtests=disabled", *options],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("meson setup failed:\n" + r.stdout[-3000:] + r.stderr[-3000:])
        r = subprocess.run([meson, "introspect", build, "--targets"], capture_output=True,
                           text=True, check=True)
        out = []
        for t in json.loads(r.stdout):
            defined = os.path.relpath(t["defined_in"], src)
            for f in t["filename"]:
                out.append((defined, os.path.relpath(f, build)))
        return out


def skip_outside_release():
    """These checks do not depend on the build: run them once, in the release build."""
    kind = os.environ.get("EDDY_COMPILE_CHECKS_BUILDTYPE", "release:none")
    if kind not in ("release:none", "release:"):
        print(f"SKIP: build-independent check, run in the release build (this one: {kind})")
        sys.exit(77)


def main():
    skip_outside_release()
    src, meson, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    failed = 0

    off = targets(src, meson, "-Dbenchmarks=disabled")
    from_bench = [f for d, f in off if d.startswith("bench" + os.sep)]
    if from_bench:
        print("FAIL: -Dbenchmarks=disabled still builds: " + ", ".join(from_bench))
        failed += 1
    else:
        print(f"ok: -Dbenchmarks=disabled defines no bench/ target ({len(off)} targets in all)")

    on = targets(src, meson, "-Dbenchmarks=auto")
    files = {f for _, f in on}
    if not any(d.startswith("bench" + os.sep) for d, _ in on):
        print("FAIL: with benchmarks on, bench/ defines nothing (the check above proves nothing)")
        failed += 1
    for t in DEMO_TARGETS:
        if t in files:
            print(f"ok: scripts/demo's target {t} exists")
        else:
            print(f"FAIL: scripts/demo builds {t}, which is not a target")
            failed += 1

    for path in WARNING_FREE:
        r = subprocess.run(cmd + ["-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic",
                                  "-Werror", "-I", os.path.join(src, "include"), "-I",
                                  os.path.join(src, "tests"), os.path.join(src, path)],
                           capture_output=True, text=True)
        if r.returncode == 0:
            print(f"ok: {path} compiles warning-free")
        else:
            print(f"FAIL: {path} has warnings:\n{r.stderr[-3000:]}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
