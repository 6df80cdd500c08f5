#!/usr/bin/python3
"""bench/cluster/compare.py: eddy's cluster_pool beside process_pool and Celery on
Redis, alternated, medians of --rounds (>= 5) runs (BENCHMARKS.md).

    bench/cluster/compare.py [--build build] [--rounds 5] [--quick]

Starts its own redis-server (Unix socket, temp dir, no persistence: the broker's
speed, not the disk's), then per round runs, in turn:
  ping  the floor: redis-benchmark's PING round trip on the same socket (-c 1 -P 1);
        a cluster call is four one-way hops (caller -> Redis -> worker -> Redis ->
        caller), the same wake-ups as two PINGs
  rt    64 B round trip, one call at a time: cluster, process, celery
  tput  1 KiB calls with 256 in flight from one caller: cluster, process, celery
  cpu   CPU-bound jobs on 1 worker, then on 2 (cluster only; the ratio is the figure)
and prints each run's line and the medians. Celery is Debian's python3-celery 5.2
with its Redis transport and result backend, prefork pool with one process, the
same echo function; its rounds are skipped (and said so) when it is not installed.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env,
                         timeout=900).stdout.strip().splitlines()[-1]
    print("   ", out, flush=True)
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def ping_p50_us(sock, n):
    """redis-benchmark's p50 of one client's PING round trips, in microseconds."""
    out = subprocess.run(["redis-benchmark", "-s", sock, "-c", "1", "-P", "1", "-n", str(n),
                          "-t", "ping"], check=True, capture_output=True, text=True,
                         timeout=300).stdout.splitlines()
    # "  latency summary (msec):" / "avg min p50 p95 p99 max" / the figures
    for i, line in enumerate(out):
        if line.strip().startswith("avg") and "p50" in line and i + 1 < len(out):
            names, values = line.split(), out[i + 1].split()
            p50 = float(values[names.index("p50")]) * 1000
            print("    pool=redis-benchmark what=ping n=%d p50_us=%.1f" % (n, p50), flush=True)
            return p50
    sys.exit("cannot read redis-benchmark's latency summary")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small n (a smoke run)")
    a = ap.parse_args()
    if a.rounds < 5 and not a.quick:
        sys.exit("--rounds must be at least 5 (BENCHMARKS.md)")
    bench = os.path.join(a.build, "bench", "cluster_bench")
    redis = shutil.which("redis-server")
    if not redis:
        sys.exit("redis-server is not installed (scripts/lib/setup.sh installs it)")
    try:
        import celery  # noqa: F401
        have_celery = True
    except ImportError:
        have_celery = False
        print("python3-celery is missing: Celery's runs are skipped (apt-get install python3-celery)")
    d = tempfile.mkdtemp(prefix="eddy-cluster-bench-")
    sock = os.path.join(d, "redis.sock")
    srv = subprocess.Popen([redis, "--port", "0", "--unixsocket", sock, "--dir", d, "--save", "",
                            "--appendonly", "no", "--logfile", os.path.join(d, "log")])
    url = "unix:" + sock
    for _ in range(500):
        if os.path.exists(sock):
            break
        time.sleep(0.01)
    n_rt, n_tput, n_cpu = (300, 3000, 8) if a.quick else (2000, 20000, 24)
    n_celery_rt, n_celery_tput = (100, 300) if a.quick else (500, 1000)
    env = dict(os.environ, EDDY_CELERY_REDIS_SOCKET=sock)
    py = "/usr/bin/python3"
    res = {}

    def add(key, value):
        res.setdefault(key, []).append(float(value))

    try:
        for r in range(a.rounds):
            print("round", r + 1, flush=True)
            if shutil.which("redis-benchmark"):
                floor = ping_p50_us(sock, 2000 if a.quick else 20000)
                add("rt ping floor p50 us", floor)
            c = run([bench, "--what", "rt", "--pool", "cluster", "--redis", url, "--n", str(n_rt)])
            add("rt cluster p50 us", c["p50_us"])
            if shutil.which("redis-benchmark"):
                add("rt cluster / 2 PING", float(c["p50_us"]) / (2 * floor))
            add("rt cluster p99 us", c["p99_us"])
            c = run([bench, "--what", "rt", "--pool", "process", "--n", str(n_rt)])
            add("rt process p50 us", c["p50_us"])
            add("rt process p99 us", c["p99_us"])
            if have_celery:
                c = run([py, os.path.join(HERE, "celery_bench.py"), "--what", "rt",
                         "--n", str(n_celery_rt)], env=env)
                add("rt celery p50 us", c["p50_us"])
                add("rt celery p99 us", c["p99_us"])
            t = run([bench, "--what", "tput", "--pool", "cluster", "--redis", url, "--size", "1024",
                     "--n", str(n_tput), "--concurrency", "4"])
            add("tput cluster calls/s", t["calls_per_s"])
            t = run([bench, "--what", "tput", "--pool", "process", "--size", "1024",
                     "--n", str(n_tput)])
            add("tput process calls/s", t["calls_per_s"])
            if have_celery:
                c = run([py, os.path.join(HERE, "celery_bench.py"), "--what", "tput", "--size", "1024",
                         "--n", str(n_celery_tput)], env=env)
                add("tput celery calls/s", c["calls_per_s"])
            one = run([bench, "--what", "cpu", "--redis", url, "--workers", "1", "--n", str(n_cpu)])
            two = run([bench, "--what", "cpu", "--redis", url, "--workers", "2", "--n", str(n_cpu)])
            add("cpu 1 worker jobs/s", one["jobs_per_s"])
            add("cpu 2 workers jobs/s", two["jobs_per_s"])
            add("cpu 2/1 ratio", float(two["jobs_per_s"]) / float(one["jobs_per_s"]))
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(d, ignore_errors=True)
    print("\nmedians of %d rounds (load average %s):" % (a.rounds, os.getloadavg()))
    for k, v in res.items():
        print("  %-24s %10.1f   (runs: %s)" % (k, statistics.median(v), ", ".join("%.0f" % x for x in v)))


if __name__ == "__main__":
    main()
