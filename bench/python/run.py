"""Side-by-side benchmark of asyncio's default loop, uvloop and eddyloop.

Echo servers (bench/python/echo_server.py) in three styles -- (a) protocol,
(b) streams, (c) sock_* -- and (d) an aiohttp hello-world server under wrk
(1 thread, 100 connections), each pinned to one CPU, driven by bench/load's
echo_load (plain epoll, no eddy) on another CPU: 100 connections x 1 KiB
messages, closed loop. Then the call_soon and call_later+cancel micro-benchmarks
(bench/python/micro.py). Loops alternate within every round (the order rotates
each round); the table gives the median of the rounds and eddy's ratio to
uvloop and to asyncio measured in the same run.

    /usr/bin/python3 bench/python/run.py --build release [--rounds 5] [--secs 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPS = ["asyncio", "uvloop", "eddy"]
MODES = ["protocol", "streams", "sock", "aiohttp"]


def run_wrk(args, env, loop, port):
    """(d): aiohttp hello world under wrk (1 thread, 100 connections)."""
    server = subprocess.Popen(
        ["taskset", "-c", str(args.server_cpu), sys.executable, os.path.join(HERE, "aiohttp_server.py"),
         "--loop", loop, "--port", str(port)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        if server.stdout.readline().strip() != "ready":
            raise SystemExit(f"{loop}/aiohttp: the server did not start")
        url = f"http://127.0.0.1:{port}/"
        if args.warmup:
            subprocess.run(["taskset", "-c", str(args.client_cpu), "wrk", "-t1", "-c100",
                            f"-d{max(1, round(args.warmup))}s", url], capture_output=True, timeout=120)
        out = subprocess.run(["taskset", "-c", str(args.client_cpu), "wrk", "-t1", "-c100",
                              f"-d{max(1, round(args.secs))}s", url],
                             capture_output=True, text=True, timeout=args.secs + 60)
        rps = errors = None
        for line in out.stdout.splitlines():
            if line.startswith("Requests/sec:"):
                rps = float(line.split()[1])
            if "Non-2xx" in line or "Socket errors" in line:
                errors = line.strip()
        if rps is None or errors:
            raise SystemExit(f"{loop}/aiohttp: wrk failed: {out.stdout}{out.stderr}")
        return rps
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_echo(args, env, loop, mode, port):
    server = subprocess.Popen(
        ["taskset", "-c", str(args.server_cpu), sys.executable, os.path.join(HERE, "echo_server.py"),
         "--loop", loop, "--mode", mode, "--port", str(port)],
        stdout=subprocess.PIPE, text=True, env=env)
    try:
        if server.stdout.readline().strip() != "ready":
            raise SystemExit(f"{loop}/{mode}: the server did not start")
        out = subprocess.run(
            ["taskset", "-c", str(args.client_cpu), args.echo_load, "127.0.0.1", str(port),
             "--conns", "100", "--size", "1024", "--secs", str(args.secs), "--warmup", str(args.warmup),
             "--json"], capture_output=True, text=True, timeout=args.secs + args.warmup + 60)
        if out.returncode != 0:
            raise SystemExit(f"{loop}/{mode}: echo_load failed: {out.stdout}{out.stderr}")
        return json.loads(out.stdout)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_micro(args, env, loop):
    out = subprocess.run(["taskset", "-c", str(args.server_cpu), sys.executable,
                          os.path.join(HERE, "micro.py"), "--loop", loop],
                         capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"micro {loop} failed: {out.stderr}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="Meson build dir with python/ and bench/echo_load")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=float, default=3)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--json-out")
    args = ap.parse_args()
    if not 1 <= args.rounds <= 50 or not 0 < args.secs <= 60 or not 0 <= args.warmup <= 60:
        raise SystemExit("--rounds 1..50, --secs (0, 60], --warmup [0, 60]")
    modes = args.modes.split(",")
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m!r}: {MODES}")
    args.echo_load = os.path.join(args.build, "bench", "echo_load")
    if not os.access(args.echo_load, os.X_OK):
        raise SystemExit(f"{args.echo_load} not found: build it (ninja -C {args.build} bench/echo_load)")
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(args.build), "python"))
    env.setdefault("EDDY_BACKEND", "io_uring")

    results = {}  # (row, loop) -> [values]
    port = 25100
    for rnd in range(args.rounds):
        order = LOOPS[rnd % 3:] + LOOPS[:rnd % 3]
        for mode in modes:
            for loop in order:
                port += 1
                if mode == "aiohttp":
                    results.setdefault((mode, loop), []).append(run_wrk(args, env, loop, port))
                    print(f"round {rnd + 1} {mode:8s} {loop:8s} {results[(mode, loop)][-1]:10.0f} req/s",
                          file=sys.stderr, flush=True)
                    continue
                r = run_echo(args, env, loop, mode, port)
                if r["errors"]["total"] != 0:
                    raise SystemExit(f"{loop}/{mode}: echo_load saw errors: {r['errors']}")
                results.setdefault((mode, loop), []).append(r["req_per_s"])
                print(f"round {rnd + 1} {mode:8s} {loop:8s} {results[(mode, loop)][-1]:10.0f} req/s",
                      file=sys.stderr, flush=True)
        for loop in order:
            m = run_micro(args, env, loop)
            for k, v in m.items():
                results.setdefault((k, loop), []).append(v)

    rows = modes + ["call_soon", "call_later_cancel"]
    units = {m: "req/s" for m in modes} | {"call_soon": "calls/s", "call_later_cancel": "timers/s"}
    print(f"\nbackend={env['EDDY_BACKEND']} rounds={args.rounds} secs={args.secs} "
          f"server cpu {args.server_cpu}, echo_load cpu {args.client_cpu}; median of rounds\n")
    print("| benchmark | asyncio | uvloop | eddyloop | eddy / uvloop | eddy / asyncio |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = {}
    for row in rows:
        med = {l: statistics.median(results[(row, l)]) for l in LOOPS}
        summary[row] = {"median": med, "all": {l: results[(row, l)] for l in LOOPS}}
        print(f"| {row} ({units[row]}) | {med['asyncio']:,.0f} | {med['uvloop']:,.0f} | {med['eddy']:,.0f} | "
              f"{med['eddy'] / med['uvloop']:.2f}x | {med['eddy'] / med['asyncio']:.2f}x |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
