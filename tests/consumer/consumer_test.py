#!/usr/bin/env python3
"""eddy as another project sees it (issue 13, point 6): install the release
build into a temporary prefix, then build two of the samples against the
installed copy with a C++23 flag — parallel_hasher with pkg-config, chat_server
with CMake's pkg_check_modules(... IMPORTED_TARGET eddy) — and run both.

Also checked: `pkg-config --cflags eddy` carries no -std flag, and each build
really compiled as C++23 (a second file with static_assert(__cplusplus >
202002L) on the same command line: a -std=c++20 from the .pc file, coming after
the user's flag, would win and fail it).

Runs in the release build only (the install is of what that build made; the
sanitizer builds would need their runtimes in the consumer's link); elsewhere it
skips, saying why (exit 77).

usage: consumer_test.py BUILD_DIR SOURCE_DIR MESON BUILDTYPE SANITIZE CXX [CXX ARGS...]
"""
import glob
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

SKIP = 77
DEADLINE = 300

CXX23_CHECK = """
static_assert(__cplusplus > 202002L, "compiled as C++20 or older: a -std flag overrode -std=c++23");
int eddy_consumer_cxx23_check() { return 23; }
"""

CMAKE_LISTS = """
cmake_minimum_required(VERSION 3.16)
project(eddy_consumer CXX)
set(CMAKE_CXX_STANDARD 23)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
find_package(PkgConfig REQUIRED)
pkg_check_modules(EDDY REQUIRED IMPORTED_TARGET eddy)
add_executable(chat_server {src}/samples/chat_server.cpp cxx23_check.cpp)
target_link_libraries(chat_server PRIVATE PkgConfig::EDDY)
"""


def run(cmd, env=None, cwd=None, what=""):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=DEADLINE)
    if r.returncode != 0:
        print(f"FAIL: {what or cmd[0]} (exit {r.returncode}): {' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        sys.exit(1)
    return r.stdout


def main():
    build, src, meson, buildtype, sanitize = sys.argv[1:6]
    cxx = sys.argv[6:]
    if buildtype != "release" or sanitize not in ("", "none"):
        print(f"SKIP: the consumer test installs the release build only (this one: buildtype={buildtype}, "
              f"b_sanitize={sanitize})")
        return SKIP
    for tool in ("pkg-config", "cmake"):
        if shutil.which(tool) is None:
            print(f"FAIL: {tool} is not installed (scripts/lib/setup.sh lists it)")
            return 1

    with tempfile.TemporaryDirectory(prefix="eddy-consumer-") as tmp:
        root = os.path.join(tmp, "root")
        run([meson, "install", "-C", build, "--destdir", root, "--no-rebuild", "--quiet"], what="meson install")
        pcs = glob.glob(os.path.join(root, "**", "pkgconfig", "eddy.pc"), recursive=True)
        if len(pcs) != 1:
            print(f"FAIL: expected one installed eddy.pc, found {pcs}")
            return 1
        # A DESTDIR install keeps the configured prefix in the .pc file; point it at
        # where the files are, as installing with --prefix=<there> would have (the
        # release build dir itself is not reconfigured: that would rebuild it).
        pc = open(pcs[0]).read()
        m = re.search(r"^prefix=(.*)$", pc, re.M)
        if not m:
            print("FAIL: eddy.pc has no prefix= line:\n" + pc)
            return 1
        prefix = root + m.group(1)
        with open(pcs[0], "w") as f:
            f.write(pc.replace(m.group(0), "prefix=" + prefix, 1))
        env = dict(os.environ)
        env["PKG_CONFIG_PATH"] = os.path.dirname(pcs[0])
        cflags = run(["pkg-config", "--cflags", "eddy"], env=env).split()
        libs = run(["pkg-config", "--libs", "eddy"], env=env).split()
        stds = [f for f in cflags if f.startswith("-std")]
        if stds:
            print(f"FAIL: pkg-config --cflags eddy forces {stds}")
            return 1
        if not any(f.startswith("-I" + root) for f in cflags):
            print(f"FAIL: pkg-config --cflags eddy does not point into the install: {cflags}")
            return 1
        print(f"ok: installed; pkg-config --cflags eddy = {' '.join(cflags)} (no -std)")

        check = os.path.join(tmp, "cxx23_check.cpp")
        with open(check, "w") as f:
            f.write(CXX23_CHECK)

        # 1. pkg-config: the user's flag first, then eddy's, as a Makefile would.
        hasher = os.path.join(tmp, "parallel_hasher")
        run(cxx + ["-std=c++23", os.path.join(src, "samples", "parallel_hasher.cpp"), check, "-o", hasher]
            + cflags + libs, what="building parallel_hasher with pkg-config")
        data = os.path.join(tmp, "data")
        with open(data, "wb") as f:
            f.write(b"eddy\n")
        out = run([hasher, "--processes", data], what="running parallel_hasher")
        if not re.fullmatch(r"[0-9a-f]{16}  " + re.escape(data) + r"\n", out):
            print(f"FAIL: parallel_hasher printed {out!r}")
            return 1
        print("ok: parallel_hasher built with pkg-config as C++23 and ran (threads and a helper process)")

        # 2. CMake, through pkg_check_modules(... IMPORTED_TARGET eddy).
        proj = os.path.join(tmp, "cmake")
        os.makedirs(proj)
        with open(os.path.join(proj, "CMakeLists.txt"), "w") as f:
            f.write(CMAKE_LISTS.format(src=src))
        shutil.copy(check, proj)
        cmake_env = dict(env)
        # Meson's compiler command may start with a launcher (ccache c++).
        launcher = []
        compiler = cxx
        if len(cxx) > 1 and os.path.basename(cxx[0]) in ("ccache", "sccache"):
            launcher = ["-DCMAKE_CXX_COMPILER_LAUNCHER=" + cxx[0]]
            compiler = cxx[1:]
        cmake_env["CXX"] = compiler[0]
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        run(["cmake", "-S", proj, "-B", os.path.join(proj, "b"), *gen, *launcher], env=cmake_env,
            what="cmake configure")
        run(["cmake", "--build", os.path.join(proj, "b")], env=cmake_env, what="cmake --build")
        flags = open(os.path.join(proj, "b", "CMakeFiles", "chat_server.dir", "flags.make")).read() \
            if not gen else run(["ninja", "-C", os.path.join(proj, "b"), "-t", "commands"])
        if "-std=c++20" in flags or "-std=gnu++20" in flags:
            print(f"FAIL: the CMake build passes a C++20 flag:\n{flags[-2000:]}")
            return 1
        chat = os.path.join(proj, "b", "chat_server")
        p = subprocess.Popen([chat, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([p.stdout], [], [], 60)
            line = p.stdout.readline() if ready else ""
            m = re.match(r"listening on (\S+) (\d+)", line)
            if not m:
                print(f"FAIL: chat_server (CMake) did not start: {line!r}")
                return 1
            with socket.create_connection(("127.0.0.1", int(m.group(2))), timeout=60) as s:
                greeting = s.makefile().readline()
                if not greeting.startswith("welcome 127.0.0.1:"):
                    print(f"FAIL: chat_server (CMake) greeted {greeting!r}")
                    return 1
                p.send_signal(signal.SIGINT)
                p.wait(timeout=60)
            if p.returncode != 0:
                print(f"FAIL: chat_server (CMake) exited {p.returncode}")
                return 1
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        print("ok: chat_server built with CMake (pkg_check_modules IMPORTED_TARGET, C++23) and ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
