"""Celery on Redis, the reference for bench/cluster: the same measurements as
cluster_bench (round trip of one call at a time; throughput with a window of calls
in flight) on the same trivial function (echo a string), one worker process.

    celery_bench.py --redis-socket PATH --what rt|tput --n N --size B [--window W]

Starts its own Celery worker (prefork pool, concurrency 1: one worker process, as
cluster_bench's one worker) on the given Redis (broker and result backend), waits
for it, measures, stops it. Prints one key=value line like cluster_bench.
Run with Debian's /usr/bin/python3 (python3-celery, python3-redis).
"""
import argparse
import os
import subprocess
import sys
import time

from celery import Celery
from celery.result import ResultSet

SOCKET = os.environ.get("EDDY_CELERY_REDIS_SOCKET", "")
app = Celery("celery_bench",
             broker="redis+socket://" + SOCKET,
             backend="redis+socket://" + SOCKET)
app.conf.update(task_serializer="json", result_serializer="json",
                accept_content=["json"], worker_prefetch_multiplier=4,
                broker_connection_retry_on_startup=True)


@app.task(name="echo")
def echo(s):
    return s


def start_worker():
    env = dict(os.environ)
    env["EDDY_CELERY_REDIS_SOCKET"] = SOCKET
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_bench", "worker",
                          "--pool", "prefork", "--concurrency", "1", "--loglevel", "WARNING",
                          "--without-gossip", "--without-mingle", "--without-heartbeat"],
                         env=env, cwd=here, stdout=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if echo.delay("x").get(timeout=2) == "x":
                return p
        except Exception:
            pass
    p.kill()
    raise SystemExit("the Celery worker did not answer in 60 s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", choices=["rt", "tput"], default="rt")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--window", type=int, default=256)
    a = ap.parse_args()
    worker = start_worker()
    try:
        payload = "x" * a.size
        for _ in range(50):
            echo.delay(payload).get()
        if a.what == "rt":
            us = []
            for _ in range(a.n):
                t0 = time.perf_counter()
                r = echo.delay(payload).get()
                us.append((time.perf_counter() - t0) * 1e6)
                assert len(r) == a.size
            us.sort()
            print("pool=celery what=rt size=%d n=%d p50_us=%.1f p99_us=%.1f"
                  % (a.size, a.n, us[len(us) // 2], us[len(us) * 99 // 100]))
        else:
            t0 = time.perf_counter()
            done = 0
            while done < a.n:
                batch = [echo.delay(payload) for _ in range(min(a.window, a.n - done))]
                # join_native: the Redis backend's fast path for many results
                for r in ResultSet(batch).join_native():
                    assert len(r) == a.size
                done += len(batch)
            s = time.perf_counter() - t0
            print("pool=celery what=tput size=%d n=%d window=%d calls_per_s=%.0f"
                  % (a.size, a.n, a.window, a.n / s))
    finally:
        worker.terminate()
        worker.wait(30)


if __name__ == "__main__":
    main()
