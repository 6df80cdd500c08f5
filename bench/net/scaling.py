#!/usr/bin/python3
"""echo_server on one loop against two loops (issue 10, "Scaling").

Alternated rounds: in each round, for each --work-us value, echo_server --threads 1
and --threads 2 (the order flips every round), each driven by bench/echo_load (no
eddy; one client thread, closed loop, one message in flight per connection, so each
message is one chunk of --work-us CPU on the server). Reports, per configuration,
the median req/s, the ratio 2 loops / 1 loop, and the median server CPU per request
(utime + stime of the server process, from /proc/PID/stat, over the measured window).

In the same rounds, two references:
  - two CPU-bound processes against one: what a second core gives anyone right now;
  - bench/uring_echo_server --threads 1 against --threads 2 (when it was built): the
    hand-written liburing echo loop, no runtime, one ring and SO_REUSEPORT listener
    per thread, at --work-us 0. What it loses with a second thread is what the
    machine costs, not eddy: on 2 cores the client needs a core of its own at
    --work-us 0, so a second server thread only takes CPU from it.
  - tokio_echo_server --threads 1 (current-thread runtime) against --threads 2 (the
    multi-thread runtime, two workers stealing work), at --work-us 0, when --tokio
    names the binary or bench/compare built it under --build: how a work-stealing
    runtime fares with a second thread on the same two cores.

    bench/net/scaling.py [--build DIR] [--rounds 5] [--secs 4] [--warmup 1]
                         [--conns 32] [--size 64] [--work 50,0] [--backend auto]
                         [--engine uring|epoll] [--no-reference] [--tokio PATH]
                         [--markdown FILE]

Needs a release build with samples/echo_server and bench/echo_load. Servers listen
on 127.0.0.1, on a port the kernel picks; every process started is killed on exit.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
NAMES = {"eddy": "eddy echo_server", "reference": "uring_echo_server (no runtime)",
         "tokio": "tokio_echo_server (1: current_thread, 2: multi_thread)"}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def server_command(args, server, threads, work):
    if server == "reference":
        return [f"{args.build}/bench/uring_echo_server", "--port", "0", "--threads", str(threads)]
    if server == "tokio":
        return [args.tokio, "--port", "0", "--threads", str(threads)]
    return [f"{args.build}/samples/echo_server", "--port", "0", "--threads", str(threads),
            "--work-us", str(work), "--backend", args.backend]


def start_server(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on"):
        p.kill()
        raise RuntimeError(f"{cmd[0]} did not start: {line!r}")
    return p, int(line.split()[3])


def measure(args, server_name, threads, work):
    server, port = start_server(server_command(args, server_name, threads, work))
    try:
        client = subprocess.Popen(
            [f"{args.build}/bench/echo_load", "127.0.0.1", str(port), "--conns", str(args.conns),
             "--size", str(args.size), "--secs", str(args.secs), "--warmup", str(args.warmup),
             "--engine", args.engine, "--json"], stdout=subprocess.PIPE, text=True)
        time.sleep(args.warmup)
        c0 = cpu_seconds(server.pid)
        time.sleep(args.secs)
        c1 = cpu_seconds(server.pid)
        out, _ = client.communicate(timeout=args.secs + args.warmup + 30)
        r = json.loads(out)
        if r["errors"]["total"]:
            raise RuntimeError(f"echo_load errors: {r['errors']}")
        rps = r["req_per_s"]
        cpu_us = (c1 - c0) * 1e6 / max(1.0, rps * args.secs)
        return rps, cpu_us
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


BUSY = ("import hashlib, sys, time\n"
        "end = time.monotonic() + float(sys.argv[1]); n = 0; b = b'x' * 64\n"
        "while time.monotonic() < end:\n"
        "    b = hashlib.sha256(b).digest(); n += 1\n"
        "print(n)\n")


def machine_scaling(secs):
    """Work done by two CPU-bound processes over one, in the same conditions: the
    most any two-loop server could gain from the second core right now."""
    def run(k):
        ps = [subprocess.Popen([sys.executable, "-c", BUSY, str(secs)], stdout=subprocess.PIPE, text=True)
              for _ in range(k)]
        return sum(int(p.communicate()[0]) for p in ps)
    one = run(1)
    return run(2) / max(1, one)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-rel")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=float, default=4)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--work", default="50,0")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--engine", default="uring", choices=["uring", "epoll"],
                    help="echo_load's engine; uring (default) needs about 0.6x the client CPU per "
                         "request of epoll here, leaving the server more of the shared cores")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip bench/uring_echo_server, the no-runtime reference at --work-us 0")
    ap.add_argument("--tokio", help="tokio_echo_server to run as a reference at --work-us 0 "
                    "(default: the one bench/compare built under --build, if any)")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    if args.rounds < 1 or args.secs <= 0 or args.conns < 1:
        ap.error("--rounds, --secs and --conns must be positive")
    works = [int(w) for w in args.work.split(",")]
    if any(w < 0 for w in works):
        ap.error("--work values must be 0 or more")
    # (server, work): the rows measured each round; the reference echoes without work.
    rows = [("eddy", w) for w in works]
    if not args.no_reference and os.path.exists(f"{args.build}/bench/uring_echo_server"):
        rows.append(("reference", 0))
    if args.tokio is None and not args.no_reference:
        built = f"{args.build}/peers/tokio/target/release/tokio_echo_server"
        args.tokio = built if os.path.exists(built) else None
    if args.tokio:
        if not os.access(args.tokio, os.X_OK):
            ap.error(f"--tokio {args.tokio}: not an executable file")
        rows.append(("tokio", 0))
    res = {(s, t, w): [] for s, w in rows for t in (1, 2)}
    machine = []
    for rnd in range(args.rounds):
        machine.append(machine_scaling(args.secs))
        print(f"round {rnd + 1}: two busy processes do {machine[-1]:.2f}x the work of one",
              file=sys.stderr, flush=True)
        order = (1, 2) if rnd % 2 == 0 else (2, 1)
        for s, w in rows:
            for t in order:
                rps, cpu = measure(args, s, t, w)
                res[(s, t, w)].append((rps, cpu))
                name = NAMES[s]
                print(f"round {rnd + 1}: {name} --threads {t} --work-us {w}: {rps:.0f} req/s, "
                      f"{cpu:.1f} server CPU-us/req", file=sys.stderr, flush=True)
    lines = ["| server | --work-us | 1 loop req/s | 2 loops req/s | ratio (median of per-round ratios) | "
             "server CPU-us/req, 1 loop | 2 loops |",
             "|---|---|---|---|---|---|---|"]
    for s, w in rows:
        one = [r for r, _ in res[(s, 1, w)]]
        two = [r for r, _ in res[(s, 2, w)]]
        ratios = [b / a for a, b in zip(one, two)]
        lines.append(
            f"| {NAMES[s]} | {w} | "
            f"{statistics.median(one):.0f} | {statistics.median(two):.0f} | "
            f"{statistics.median(ratios):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)}) | "
            f"{statistics.median(c for _, c in res[(s, 1, w)]):.1f} | "
            f"{statistics.median(c for _, c in res[(s, 2, w)]):.1f} |")
    lines.append("")
    lines.append(f"Reference, same rounds: two CPU-bound processes (sha256 in a loop) did "
                 f"{statistics.median(machine):.2f}x the work of one (median; rounds: "
                 f"{', '.join(f'{x:.2f}' for x in machine)}): the most a second core gave anyone.")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"echo_server --threads 2 vs --threads 1, the references the same ({args.rounds} alternated rounds, "
                    f"{args.secs:g} s each after {args.warmup:g} s warm-up; echo_load --conns {args.conns} "
                    f"--size {args.size} --engine {args.engine}, one client thread; backend {args.backend}; nproc {os.cpu_count()})\n\n")
            f.write(text + "\n")


if __name__ == "__main__":
    main()
