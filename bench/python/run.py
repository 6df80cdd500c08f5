"""Side-by-side benchmark of asyncio's default loop, uvloop and eddyloop.

Echo servers (bench/python/echo_server.py) in three styles -- (a) protocol,
(b) streams, (c) sock_* -- (d) an aiohttp hello-world server under wrk
(1 thread, 100 connections) and (e) the same over HTTPS (TLS in asyncio's sslproto
on asyncio's loop, uvloop's own Cython layer on uvloop, eddyloop's C layer on
eddyloop (EDDYLOOP_SSLPROTO=1 puts eddyloop on sslproto); a throw-away certificate
made with openssl; wrk keeps its 100 connections, so this is TLS records, not
handshakes),
(f) aiohttp serving a file with web.FileResponse under the same wrk (aiohttp sends
it with loop.sendfile: os.sendfile on asyncio's loop and on eddyloop, a copy
through the transport where the loop has no native sendfile; --static-kib sets
the size),
each pinned to one CPU, driven by bench/load's
echo_load (no eddy; --engine uring by default: liburing, so the client is not the
bottleneck) on another CPU: 100 connections x 1 KiB
messages, closed loop. Then the call_soon and call_later+cancel micro-benchmarks
and a subprocess one, /bin/true 8 at a time (bench/python/micro.py). Loops alternate within every round (the order rotates
each round); the table gives the median of the rounds and eddy's ratio to
uvloop and to asyncio measured in the same run.

    /usr/bin/python3 bench/python/run.py --build release [--rounds 5] [--secs 3]
        [--baseline OTHER_BUILD]   (eddyloop of another build as a fourth contender)
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))
LOOPS = ["asyncio", "uvloop", "eddy"]
# --baseline DIR adds "eddy-base": eddyloop from another build (a previous commit),
# run as a fourth contender in the same alternated rounds.
BASE_ENV = None


def next_free_port(port):
    """The first port from `port` on that nothing listens on (a server left behind
    by an interrupted run would otherwise end this one)."""
    while True:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                port += 1


def contender(env, loop):
    """The environment and --loop value a contender's server runs with."""
    if loop == "eddy-base":
        return BASE_ENV, "eddy"
    return env, loop
MODES = ["protocol", "streams", "sock", "aiohttp", "https", "static"]
WRK_MODES = ("aiohttp", "https", "static")


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1, for (e); returns (cert, key)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def run_wrk(args, env, loop, port, tls=None, static=None):
    """(d); (e) with tls=(cert, key); (f) with static=PATH, the file served: aiohttp
    under wrk (1 thread, 100 connections)."""
    mode = "https" if tls else "static" if static else "aiohttp"
    env, loop = contender(env, loop)
    # aiohttp logs every request still open at SIGTERM ("Task was destroyed but it is
    # pending!") on every loop: kept out of the table's way, shown if the server fails.
    errors_file = tempfile.TemporaryFile("w+")
    server = subprocess.Popen(
        ["taskset", "-c", str(args.server_cpu), sys.executable, os.path.join(HERE, "aiohttp_server.py"),
         "--loop", loop, "--port", str(port)] + (["--tls", tls[0], tls[1]] if tls else []) +
        (["--file", static] if static else []),
        stdout=subprocess.PIPE, stderr=errors_file, text=True, env=env)
    try:
        if server.stdout.readline().strip() != "ready":
            errors_file.seek(0)
            raise SystemExit(f"{loop}/{mode}: the server did not start: {errors_file.read()[-2000:]}")
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/{'file' if static else ''}"
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
            raise SystemExit(f"{loop}/{mode}: wrk failed: {out.stdout}{out.stderr}")
        return rps
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        errors_file.close()


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_echo(args, env, loop, mode, port):
    """(a)-(c): one echo server under echo_load. Also samples how busy the client
    was inside the measured window: near 1.0 means the load generator, not the
    server, set the figure (the run then understates the faster server)."""
    env, loop = contender(env, loop)
    server = subprocess.Popen(
        ["taskset", "-c", str(args.server_cpu), sys.executable, os.path.join(HERE, "echo_server.py"),
         "--loop", loop, "--mode", mode, "--port", str(port)],
        stdout=subprocess.PIPE, text=True, env=env)
    try:
        if server.stdout.readline().strip() != "ready":
            raise SystemExit(f"{loop}/{mode}: the server did not start")
        client = subprocess.Popen(
            ["taskset", "-c", str(args.client_cpu), args.echo_load, "127.0.0.1", str(port),
             "--conns", "100", "--size", "1024", "--secs", str(args.secs), "--warmup", str(args.warmup),
             "--engine", args.engine, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # taskset execs echo_load, so the PID is the client's. Sample inside the window.
        margin = min(0.2, args.secs / 4)
        time.sleep(args.warmup + margin)
        c0, t0 = cpu_seconds(client.pid), time.monotonic()
        time.sleep(args.secs - 2 * margin)
        c1, t1 = cpu_seconds(client.pid), time.monotonic()
        out, err = client.communicate(timeout=args.secs + args.warmup + 60)
        if client.returncode != 0:
            raise SystemExit(f"{loop}/{mode}: echo_load failed: {out}{err}")
        r = json.loads(out)
        r["client_busy"] = (c1 - c0) / max(1e-9, t1 - t0)
        return r
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_micro(args, env, loop):
    env, loop = contender(env, loop)
    out = subprocess.run(["taskset", "-c", str(args.server_cpu), sys.executable,
                          os.path.join(HERE, "micro.py"), "--loop", loop],
                         capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"micro {loop} failed: {out.stderr}")
    return json.loads(out.stdout)


def main():
    # SIGTERM (a killed run) unwinds like ^C, so every server it started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="Meson build dir with python/ and bench/echo_load")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=float, default=3)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--engine", default="uring", choices=["uring", "epoll"],
                    help="echo_load's engine (default uring: on this VM the epoll client saturates "
                         "its CPU near 120k req/s, below what the fastest loop serves)")
    ap.add_argument("--static-kib", type=int, default=256, help="(f)'s file size, KiB (1..65536)")
    ap.add_argument("--json-out")
    ap.add_argument("--baseline", help="another build dir: its eddyloop joins the rounds as eddy-base")
    ap.add_argument("--eddy-only", action="store_true",
                    help="with --baseline: run eddy and eddy-base only (a before/after check in half the time)")
    args = ap.parse_args()
    if not 1 <= args.rounds <= 50 or not 0 < args.secs <= 60 or not 0 <= args.warmup <= 60:
        raise SystemExit("--rounds 1..50, --secs (0, 60], --warmup [0, 60]")
    if not 1 <= args.static_kib <= 65536:
        raise SystemExit("--static-kib must be 1..65536")
    modes = args.modes.split(",")
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m!r}: {MODES}")
    args.echo_load = os.path.join(args.build, "bench", "echo_load")
    if not os.access(args.echo_load, os.X_OK):
        raise SystemExit(f"{args.echo_load} not found: build it (ninja -C {args.build} bench/echo_load)")
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(args.build), "python"))
    env.setdefault("EDDY_BACKEND", "io_uring")
    global BASE_ENV
    if args.baseline:
        if not os.path.isdir(os.path.join(args.baseline, "python", "eddyloop")):
            raise SystemExit(f"--baseline {args.baseline}: no python/eddyloop there (build it with -Dpython=enabled)")
        BASE_ENV = dict(env, PYTHONPATH=os.path.join(os.path.abspath(args.baseline), "python"))
        LOOPS.append("eddy-base")
    if args.eddy_only:
        if not args.baseline:
            raise SystemExit("--eddy-only needs --baseline")
        LOOPS[:] = ["eddy", "eddy-base"]
    tls = None
    if "https" in modes:
        certdir = tempfile.TemporaryDirectory()
        tls = make_certificate(certdir.name)
    static = None
    if "static" in modes:
        staticdir = tempfile.TemporaryDirectory()
        static = os.path.join(staticdir.name, "file.bin")
        with open(static, "wb") as f:
            f.write(os.urandom(args.static_kib * 1024))

    results = {}  # (row, loop) -> [values]
    busy = {}  # (echo mode, loop) -> [client CPU busy fraction]
    port = 25100
    for rnd in range(args.rounds):
        order = LOOPS[rnd % len(LOOPS):] + LOOPS[:rnd % len(LOOPS)]
        for mode in modes:
            for loop in order:
                port = next_free_port(port + 1)
                if mode in WRK_MODES:
                    results.setdefault((mode, loop), []).append(
                        run_wrk(args, env, loop, port, tls if mode == "https" else None,
                                static if mode == "static" else None))
                    print(f"round {rnd + 1} {mode:8s} {loop:8s} {results[(mode, loop)][-1]:10.0f} req/s",
                          file=sys.stderr, flush=True)
                    continue
                r = run_echo(args, env, loop, mode, port)
                if r["errors"]["total"] != 0:
                    raise SystemExit(f"{loop}/{mode}: echo_load saw errors: {r['errors']}")
                results.setdefault((mode, loop), []).append(r["req_per_s"])
                busy.setdefault((mode, loop), []).append(r["client_busy"])
                print(f"round {rnd + 1} {mode:8s} {loop:8s} {results[(mode, loop)][-1]:10.0f} req/s "
                      f"(client CPU {r['client_busy']:.0%})", file=sys.stderr, flush=True)
        for loop in order:
            m = run_micro(args, env, loop)
            for k, v in m.items():
                results.setdefault((k, loop), []).append(v)

    rows = modes + ["call_soon", "call_later_cancel", "subprocess"]
    units = {m: "req/s" for m in modes} | {"call_soon": "calls/s", "call_later_cancel": "timers/s",
                                           "subprocess": "procs/s"}
    print(f"\nbackend={env['EDDY_BACKEND']} rounds={args.rounds} secs={args.secs} "
          f"server cpu {args.server_cpu}, echo_load --engine {args.engine} cpu {args.client_cpu}; "
          f"median of rounds\n")
    print("| benchmark | asyncio | uvloop | eddyloop | eddy / uvloop | eddy / asyncio |" +
          (" eddy-base | eddy / eddy-base |" if BASE_ENV else ""))
    print("|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if BASE_ENV else ""))
    summary = {}
    for row in rows:
        med = {l: statistics.median(results[(row, l)]) for l in LOOPS}
        summary[row] = {"median": med, "all": {l: results[(row, l)] for l in LOOPS}}
        if row in MODES and row not in WRK_MODES:
            summary[row]["client_busy"] = {l: busy[(row, l)] for l in LOOPS}
        fig = lambda l: f"{med[l]:,.0f}" if l in med else "-"
        vs = lambda l: f"{med['eddy'] / med[l]:.2f}x" if l in med else "-"
        print(f"| {row} ({units[row]}) | {fig('asyncio')} | {fig('uvloop')} | {fig('eddy')} | "
              f"{vs('uvloop')} | {vs('asyncio')} |" +
              (f" {med['eddy-base']:,.0f} | {med['eddy'] / med['eddy-base']:.3f}x |" if BASE_ENV else ""))
    # A loop whose run had the client's CPU nearly full was held back by the client.
    bound = [f"{row}/{l} ({statistics.median(busy[(row, l)]):.0%})" for row in modes if row not in WRK_MODES
             for l in LOOPS if statistics.median(busy[(row, l)]) > 0.95]
    echo_modes = [row for row in modes if row not in WRK_MODES]
    if echo_modes:
        print("\nclient CPU busy (median over the measured window): " +
              ", ".join(f"{row}: " + " / ".join(f"{statistics.median(busy[(row, l)]):.0%}" for l in LOOPS)
                        for row in echo_modes) + " (" + " / ".join(LOOPS) + ")")
    if bound:
        print("client-bound (the server may be faster than shown): " + ", ".join(bound))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
