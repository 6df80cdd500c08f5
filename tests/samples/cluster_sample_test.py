#!/usr/bin/env python3
"""Runs samples/cluster_demo against two samples/cluster_worker processes through a
redis-server this test starts (temp dir, Unix socket), as a user would: every
result checked, then SIGTERM stops the workers cleanly and they leave the group.

usage: cluster_sample_test.py WORKER DEMO
Exits 77 (meson: skipped) with the reason when redis-server is not installed.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main(worker, demo):
    redis = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if not redis:
        print("SKIP: redis-server is not installed (scripts/lib/setup.sh installs it)")
        sys.exit(77)
    d = tempfile.mkdtemp(prefix="eddy-cluster-sample-")
    sock = os.path.join(d, "redis.sock")
    srv = subprocess.Popen([redis, "--port", "0", "--unixsocket", sock, "--dir", d, "--save", "",
                            "--logfile", os.path.join(d, "log")])
    workers = []
    try:
        for _ in range(500):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        url = "unix:" + sock
        workers = [subprocess.Popen([worker, "--redis", url, "--concurrency", "1"]) for _ in range(2)]
        out = subprocess.run([demo, "--redis", url, "--jobs", "40", "--size", "5000"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0 or "40 results ok" not in out.stdout:
            fail("cluster_demo: rc=%d out=%r err=%r" % (out.returncode, out.stdout, out.stderr))
        print(out.stdout.strip())
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            rc = w.wait(timeout=30)
            if rc != 0:
                fail("cluster_worker exited with %d after SIGTERM" % rc)
        groups = subprocess.run(["redis-cli", "-s", sock, "XINFO", "GROUPS", "eddy:jobs"],
                                capture_output=True, text=True).stdout.split()
        if shutil.which("redis-cli") and groups[groups.index("consumers") + 1] != "0":
            fail("workers did not leave the group: %r" % groups)
        bad = subprocess.run([worker, "--redis", "redis://h:0"], capture_output=True, text=True)
        if bad.returncode != 2 or "port 0" not in bad.stderr:
            fail("a bad URL: rc=%d err=%r" % (bad.returncode, bad.stderr))
        print("ok: 40 results, workers stopped cleanly, bad URL refused")
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        srv.terminate()
        srv.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
