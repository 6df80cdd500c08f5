#!/usr/bin/python3
"""File-read benchmark (issue 23): eddy::fs on io_uring (native ops), eddy on the
blocking pool (io_uring with set_io_path(pool), and epoll), libuv's uv_fs_read,
tokio::fs (if tokio_fs_read was built) and plain pread threads, alternated, median of --rounds. Each contender is pinned to
the same CPUs (both, by default) and reads a file in the page cache.

    bench/fs/compare_fs.py --build build [--size-mib 1024] [--rounds 5] [--seconds 2]

Prints a Markdown table: reads/s, MiB/s, CPU-us per read, the loop's timer
lateness (a 1 ms timer; eddy only) and the ratio to each reference.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ENGINES = [("eddy io_uring", "eddy", "io_uring"), ("eddy pool (io_uring loop)", "eddy", "io_uring-pool"),
           ("eddy pool (epoll loop)", "eddy", "epoll"), ("libuv uv_fs_read", "ref", "libuv"),
           ("pread threads", "ref", "pread")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--file", default="/tmp/eddy_fs_bench.bin")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--inflight", default="1,16,64")
    ap.add_argument("--patterns", default="random,seq")
    ap.add_argument("--tokio", default="",
                    help="tokio_fs_read (bench/peers/tokio; bench/compare builds it into "
                         "BUILD/peers/tokio/target/release); found there if not given")
    a = ap.parse_args()
    tokio = a.tokio or os.path.join(a.build, "peers", "tokio", "target", "release", "tokio_fs_read")
    engines = list(ENGINES)
    if os.path.exists(tokio):
        engines.insert(4, ("tokio::fs", "tokio", "tokio"))
    else:
        print("(no tokio_fs_read at %s: tokio::fs left out)" % tokio, file=sys.stderr)
    if not os.path.exists(a.file) or os.path.getsize(a.file) != a.size_mib << 20:
        with open(a.file, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(a.size_mib):
                f.write(block)
    with open(a.file, "rb") as f:  # into the page cache
        while f.read(1 << 24):
            pass
    exe = {"eddy": os.path.join(a.build, "bench", "fs_read_eddy"),
           "ref": os.path.join(a.build, "bench", "fs_read_ref"), "tokio": tokio}
    results = {}
    for pattern in a.patterns.split(","):
        for n in [int(x) for x in a.inflight.split(",")]:
            for r in range(a.rounds):
                for name, kind, engine in engines:
                    out = subprocess.run([exe[kind], "--file", a.file, "--engine", engine,
                                          "--inflight", str(n), "--seconds", str(a.seconds),
                                          "--pattern", pattern],
                                         check=True, capture_output=True, text=True).stdout
                    results.setdefault((pattern, n, name), []).append(json.loads(out))
    print("| pattern | in flight | contender | reads/s | MiB/s | CPU-us/read | timer late p50/max us | vs libuv | vs tokio | vs pread |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pattern in a.patterns.split(","):
        for n in [int(x) for x in a.inflight.split(",")]:
            med = {}
            for name, _, _ in engines:
                rs = results[(pattern, n, name)]
                med[name] = {k: statistics.median(x[k] for x in rs)
                             for k in ("reads_per_s", "mib_per_s", "cpu_us_per_read",
                                       "timer_late_p50_us", "timer_late_max_us")}
            for name, kind, _ in engines:
                m = med[name]
                late = ("%.0f / %.0f" % (m["timer_late_p50_us"], m["timer_late_max_us"])
                        if kind == "eddy" else "-")
                vs_tokio = ("%.2f" % (m["reads_per_s"] / med["tokio::fs"]["reads_per_s"])
                            if "tokio::fs" in med else "-")
                print("| %s | %d | %s | %.0f | %.0f | %.2f | %s | %.2f | %s | %.2f |" % (
                    pattern, n, name, m["reads_per_s"], m["mib_per_s"], m["cpu_us_per_read"], late,
                    m["reads_per_s"] / med["libuv uv_fs_read"]["reads_per_s"], vs_tokio,
                    m["reads_per_s"] / med["pread threads"]["reads_per_s"]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
