#!/usr/bin/env bash
# Issue 3, acceptance items 3 and 4, side by side in one run (BENCHMARKS.md):
#  3. echo_load, 100 connections x 1 KiB, closed loop, server pinned to CPU 0 and
#     load to CPU 1: the eddy echo server on io_uring vs on epoll (and the
#     hand-written epoll reference), alternated A B C A B C ..., median req/s and
#     the ratio to the reference.
#  4. RSS per idle connection at 10,000 idle connections (idle_conns), io_uring
#     and epoll.
#
#   bench/net/compare_backends.sh [BUILD_DIR] [ROUNDS] [SECS]
#
# Needs BUILD_DIR/samples/echo_server (--port, --backend), BUILD_DIR/bench/echo_load,
# BUILD_DIR/bench/epoll_echo_server and BUILD_DIR/bench/idle_conns. Loopback only;
# every run is bounded by SECS.
set -euo pipefail

build=${1:-build}
rounds=${2:-3}
secs=${3:-5}
port=${PORT:-7311}
server=$build/samples/echo_server
load=$build/bench/echo_load
ref=$build/bench/epoll_echo_server
idle=$build/bench/idle_conns
for f in "$server" "$load" "$ref" "$idle"; do
  [[ -x $f ]] || { echo "compare_backends: missing $f (build it first)" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)"

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "compare_backends: server did not listen on $port" >&2
  return 1
}

start() {  # start NAME: the server under test, pinned to CPU 0; sets $pid
  case $1 in
    io_uring|epoll) taskset -c 0 "$server" --port "$port" --backend "$1" >/dev/null 2>&1 & ;;
    reference) taskset -c 0 "$ref" --port "$port" >/dev/null 2>&1 & ;;
  esac
  pid=$!
  wait_port
}

stop() {
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

declare -A results
for r in $(seq "$rounds"); do
  for name in io_uring epoll reference; do
    start "$name"
    line=$(taskset -c 1 "$load" 127.0.0.1 "$port" --conns 100 --size 1024 --secs "$secs" --json)
    stop
    rps=$(sed -n 's/.*"req_per_s":\([0-9.]*\).*/\1/p' <<<"$line")
    results[$name]+="$rps "
    echo "round $r $name: $rps req/s" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ref_med=$(median <<<"${results[reference]}")
echo "E2 at 100 conns x 1 KiB, $rounds rounds x ${secs}s, median req/s (ratio to the epoll reference):"
for name in io_uring epoll reference; do
  m=$(median <<<"${results[$name]}")
  printf '  %-10s %12.0f  (%.2fx)\n' "$name" "$m" "$(awk -v a="$m" -v b="$ref_med" 'BEGIN{print a/b}')"
done

echo "M1: RSS per idle connection at 10,000 connections:"
for name in io_uring epoll; do
  start "$name"
  printf '  %-10s ' "$name"
  "$idle" 127.0.0.1 "$port" --pid "$pid" --conns 10000 --settle 2 || true
  stop
done
