#!/usr/bin/python3
"""HTTP benchmark (issue 23): eddy's samples/http_server against nginx and h2o, one
worker each, every server pinned to CPU 0 and wrk to CPU 1, 100 keep-alive
connections; the fixed 13-byte body, a 16 KiB file and a 1 MiB file; servers
alternated within each round, median of --rounds.

    bench/http/compare_http.py --build build [--rounds 5] [--seconds 5] [--backend io_uring]

nginx: `return 200 "Hello, World!"` and its static files with sendfile on, access
log off, open_file_cache valid 1 s (as http_server's default --file-cache 1). h2o 2.2 (Debian): its file handler, and the fixed body from its mruby
handler (h2o has no plain `return`). Prints a Markdown table: requests/s, p99
latency, the server's CPU-us per request (utime+stime from /proc over the run)
and ratios to nginx and h2o.
"""
import argparse
import os
import resource
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/nginx.err warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush off;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  # Like http_server's --file-cache 1 (its default): open fds and stats kept 1 s.
  open_file_cache max=1024 inactive=60s;
  open_file_cache_valid 1s;
  types {{ application/octet-stream bin; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location = /plaintext {{ default_type text/plain; return 200 "Hello, World!"; }}
    location / {{ root {www}; }}
  }}
}}
"""

H2O_CONF = """
num-threads: 1
user: root
pid-file: {dir}/h2o.pid
error-log: {dir}/h2o.err
listen:
  host: 127.0.0.1
  port: {port}
http1-request-timeout: 65
hosts:
  "default":
    paths:
      /plaintext:
        mruby.handler: |
          Proc.new do |env|
            [200, {{"content-type" => "text/plain"}}, ["Hello, World!"]]
          end
      /:
        file.dir: {www}
"""


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d" % port)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


PIPELINE_LUA = """
init = function(args)
  local r = {}
  for i = 1, %d do r[i] = wrk.format(nil) end
  req = table.concat(r)
end
request = function() return req end
"""

PIPELINE = {"depth": 1, "script": None}
CLIENT = {"busy": []}  # wrk's CPU share of each measured run


def wrk(url, seconds, conns):
    extra = ["-s", PIPELINE["script"]] if PIPELINE["script"] else []
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds,
                          "--latency"] + extra + [url], check=True, capture_output=True, text=True).stdout
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    CLIENT["busy"].append((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) /
                          max(1e-9, time.monotonic() - t0))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        print(out, file=sys.stderr)
    return rps, total, float(p99.group(1)) * scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--backend", default="io_uring")
    ap.add_argument("--workloads", default="plaintext,16k,1m")
    ap.add_argument("--servers", default="eddy,nginx,h2o",
                    help="eddy, eddy-epoll, eddy-libuv, eddy-sendfile (16 KiB by sendfile), nginx, h2o")
    ap.add_argument("--pipeline", type=int, default=1,
                    help="requests each connection keeps in flight (wrk Lua script), 1..64: with 1, "
                         "one wrk thread saturates its CPU near 120k req/s on this VM, below what "
                         "the fastest server answers")
    a = ap.parse_args()
    if not 1 <= a.pipeline <= 64:
        raise SystemExit("--pipeline must be 1..64")
    tmp = tempfile.mkdtemp(prefix="eddy_http_bench_")
    if a.pipeline > 1:
        PIPELINE["script"] = os.path.join(tmp, "pipeline.lua")
        with open(PIPELINE["script"], "w") as f:
            f.write(PIPELINE_LUA % a.pipeline)
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    with open(os.path.join(www, "f16k.bin"), "wb") as f:
        f.write(os.urandom(16 * 1024))
    with open(os.path.join(www, "f1m.bin"), "wb") as f:
        f.write(os.urandom(1024 * 1024))
    ports = {"eddy": 18181, "nginx": 18182, "h2o": 18183, "eddy-epoll": 18184,
             "eddy-libuv": 18185, "eddy-sendfile": 18186}
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=tmp, port=ports["nginx"], www=www))
    with open(os.path.join(tmp, "h2o.conf"), "w") as f:
        f.write(H2O_CONF.format(dir=tmp, port=ports["h2o"], www=www))
    eddy = os.path.join(a.build, "samples", "http_server")
    every = {
        "eddy": [eddy, "--listen", "127.0.0.1:%d" % ports["eddy"], "--root", www, "--backend", a.backend],
        "eddy-epoll": [eddy, "--listen", "127.0.0.1:%d" % ports["eddy-epoll"], "--root", www,
                       "--backend", "epoll"],
        "eddy-libuv": [eddy, "--listen", "127.0.0.1:%d" % ports["eddy-libuv"], "--root", www,
                       "--backend", "libuv"],
        "eddy-sendfile": [eddy, "--listen", "127.0.0.1:%d" % ports["eddy-sendfile"], "--root", www,
                          "--backend", a.backend, "--sendfile-min", "0"],
        "nginx": ["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")],
        "h2o": ["h2o", "-c", os.path.join(tmp, "h2o.conf")],
    }
    cmds = {n: every[n] for n in a.servers.split(",")}
    procs = {}
    try:
        for name, cmd in cmds.items():
            procs[name] = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL,
                                           stderr=open(os.path.join(tmp, name + ".log"), "w"))
            wait_port(ports[name])
        paths = {"plaintext": "/plaintext", "16k": "/f16k.bin", "1m": "/f1m.bin"}
        res = {}
        busy = {}
        tick = os.sysconf("SC_CLK_TCK")
        for w in a.workloads.split(","):
            for name in cmds:  # warm-up
                wrk("http://127.0.0.1:%d%s" % (ports[name], paths[w]), 1, a.connections)
            for r in range(a.rounds):
                for name in cmds:
                    pid = procs[name].pid
                    c0 = cpu_ticks(pid)
                    rps, total, p99 = wrk("http://127.0.0.1:%d%s" % (ports[name], paths[w]),
                                          a.seconds, a.connections)
                    busy.setdefault((w, name), []).append(CLIENT["busy"][-1])
                    cpu_us = (cpu_ticks(pid) - c0) * 1e6 / tick / max(total, 1)
                    res.setdefault((w, name), []).append((rps, p99, cpu_us))
        print("| workload | server | req/s (median of %d) | p99 ms | server CPU-us/req | vs nginx | vs h2o |" % a.rounds)
        print("|---|---|---|---|---|---|---|")
        for w in a.workloads.split(","):
            med = {n: [statistics.median(x[i] for x in res[(w, n)]) for i in range(3)] for n in cmds}
            for n in cmds:
                ref = lambda r: "%.2f" % (med[n][0] / med[r][0]) if r in med else "-"
                print("| %s | %s | %.0f | %.2f | %.2f | %s | %s |" % (
                    w, n, med[n][0], med[n][1], med[n][2], ref("nginx"), ref("h2o")))
            print("| %s | (wrk CPU busy, median) | %s |" % (w, "; ".join(
                "%s %.0f%%" % (n, 100 * statistics.median(busy[(w, n)])) for n in cmds)))
            print("| %s | (all rounds, req/s) | %s |" % (w, "; ".join(
                "%s %s" % (n, " ".join("%.0f" % x[0] for x in res[(w, n)])) for n in cmds)))
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
