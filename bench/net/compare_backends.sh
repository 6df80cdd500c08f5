#!/usr/bin/env bash
# eddy's backends side by side in one run (BENCHMARKS.md "Servers"; issue 8,
# "Benchmarks"; before it issue 3, items 3 and 4).
#
# One command measures, alternated A B C D E A B C D E ... (default 5 rounds x 4 s):
#   A echo_server(epoll)     samples/echo_server --backend epoll
#   B echo_server(io_uring)  samples/echo_server --backend io_uring
#   C epoll_echo_server      the hand-written epoll reference (bench/)
#   D tcp_proxy(epoll)       samples/tcp_proxy --backend epoll    } in front of the
#   E tcp_proxy(io_uring)    samples/tcp_proxy --backend io_uring } reference server
#   (F ...                   the same eddy samples from --baseline build dirs)
# each driven by bench/echo_load (plain epoll, no eddy): 100 connections x 1 KiB,
# closed loop. Server or proxy pinned to CPU 0; echo_load on CPU 1, and for the
# proxy rows the reference server behind the proxy on CPU 1 too. Prints, per
# contender, the median req/s and its ratio to the reference (proxy rows also to
# tcp_proxy(io_uring)), the median p99, and the median server CPU-us per request
# (utime+stime+cutime+cstime from /proc/PID/stat just before and after the
# measured window; proxy rows count the proxy process only) and its ratio to the
# reference's; then issue 8's ratios with their targets; then M1, RSS per idle
# connection at 10,000 connections (bench/idle_conns) unless --no-memory.
#
#   bench/net/compare_backends.sh [--build DIR] [--rounds N] [--secs S] [--warmup S]
#       [--conns N] [--size BYTES] [--only echo-epoll,echo-io_uring,ref,proxy-epoll,proxy-io_uring]
#       [--baseline [LABEL=]DIR ...] [--baseline-rows echo-io_uring,proxy-io_uring]
#       [--splice] [--no-memory] [--idle-conns N] [--markdown [FILE]]
#   bench/net/compare_backends.sh [BUILD_DIR] [ROUNDS] [SECS]     (the old form)
#   bench/net/compare_backends.sh --help
#
# Example, this tree against the previous commit's binaries:
#   git worktree add /tmp/eddy-prev HEAD~1 && (cd /tmp/eddy-prev &&
#     meson setup build --buildtype=release -Dtests=disabled && ninja -C build)
#   bench/net/compare_backends.sh --build build --baseline prev=/tmp/eddy-prev/build --markdown
#
# Needs, in the build dir: samples/echo_server, samples/tcp_proxy, bench/echo_load,
# bench/epoll_echo_server, bench/idle_conns (release build); taskset; 2 CPUs.
# Servers listen on 127.0.0.1 only, on ports the kernel picks. Every run is bounded
# (each load run by its length plus 30 s, the whole script by a budget it prints),
# and every process it started is killed when it exits, however it exits.
#
# The work is done by compare_backends.py beside this file (Python 3 standard
# library only), run with the system python3: a pyenv shim may come first in PATH.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3) || { echo "compare_backends: needs python3" >&2; exit 2; }
exec "$py" "$here/compare_backends.py" "$@"
