#!/usr/bin/python3
"""bench/operability.py: what eddy's metrics and stall detector cost (issue 24).

    bench/operability.py [--build build] [--rounds 5] [--secs 3] [--backend io_uring]

Three configurations of the same binaries, in one run, alternated every round (A B C,
C B A, ...), each figure the median over rounds:
  off      loop_options::metrics = false, stall detector off (echo_server --metrics off,
           EDDY_BENCH_METRICS=off for the micro-suite)
  metrics  the default: metrics on, stall detector off
  armed    metrics on and the stall detector armed at 25 ms (EDDY_STALL_MS=25)
Echo: samples/echo_server pinned to CPU 0, bench/echo_load (no eddy in it) pinned to
CPU 1, 100 connections x 1 KiB, closed loop: req/s and the server's CPU-us per request
(/proc/PID/stat around the measured window). Micro: eddy_micro's BM_spawn_join and
BM_call_soon (ns per op). Prints a Markdown table of medians and ratios to `off`.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "off": ({"EDDY_BENCH_METRICS": "off"}, ["--metrics", "off"]),
    "metrics": ({}, []),
    "armed": ({"EDDY_STALL_MS": "25"}, []),
}


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def echo_round(build, name, backend, secs):
    env_extra, args = CONFIGS[name]
    env = dict(os.environ, **env_extra)
    env.pop("EDDY_STALL_MS", None) if "EDDY_STALL_MS" not in env_extra else None
    srv = subprocess.Popen(["taskset", "-c", "0", f"{build}/samples/echo_server", "--port", "0",
                            "--backend", backend, "--grace", "0", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = srv.stdout.readline()
        port = int(line.split()[-1])
        load = subprocess.Popen(["taskset", "-c", "1", f"{build}/bench/echo_load", "127.0.0.1", str(port),
                                 "--conns", "100", "--size", "1024", "--secs", str(secs), "--warmup", "1",
                                 "--json"], stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)  # the warm-up
        t0 = cpu_ticks(srv.pid)
        out, _ = load.communicate(timeout=secs + 60)
        t1 = cpu_ticks(srv.pid)
        r = json.loads(out)
        rps = r["req_per_s"] if "req_per_s" in r else r["rps"]
        hz = os.sysconf("SC_CLK_TCK")
        cpu_us = (t1 - t0) / hz * 1e6 / max(1.0, rps * secs)
        return rps, cpu_us
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()


def micro_round(build, name):
    env_extra, _ = CONFIGS[name]
    env = dict(os.environ, **env_extra)
    if "EDDY_STALL_MS" not in env_extra:
        env.pop("EDDY_STALL_MS", None)
    out = subprocess.run(["taskset", "-c", "0", f"{build}/bench/eddy_micro",
                          "--benchmark_filter=^BM_(spawn_join|call_soon)$", "--benchmark_format=json",
                          "--benchmark_min_time=0.5"], capture_output=True, text=True, env=env, check=True)
    res = {}
    for b in json.loads(out.stdout)["benchmarks"]:
        res[b["name"]] = b["real_time"] if b["time_unit"] == "ns" else b["real_time"] * 1000
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=3)
    ap.add_argument("--backend", default="io_uring")
    ap.add_argument("--skip-echo", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.rounds <= 100 or not 1 <= a.secs <= 600:
        sys.exit("operability.py: --rounds 1..100, --secs 1..600")
    names = list(CONFIGS)
    echo = {n: [] for n in names}
    micro = {n: [] for n in names}
    for rnd in range(a.rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        for n in order:
            if not a.skip_echo:
                echo[n].append(echo_round(a.build, n, a.backend, a.secs))
            micro[n].append(micro_round(a.build, n))
            print(f"round {rnd + 1} {n}: echo {echo[n][-1] if echo[n] else '-'} micro {micro[n][-1]}",
                  file=sys.stderr, flush=True)
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, backend {a.backend}, "
          f"{a.rounds} rounds alternated, medians; ratio = config / off (per-round ratios' median)\n")
    print("| config | echo req/s | ratio | server CPU-us/req | BM_spawn_join ns | ratio | BM_call_soon ns | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for n in names:
        row = [n]
        if echo[n]:
            rps = statistics.median(r for r, _ in echo[n])
            ratio = statistics.median(echo[n][i][0] / echo["off"][i][0] for i in range(a.rounds))
            cpu = statistics.median(c for _, c in echo[n])
            row += [f"{rps:,.0f}", f"{ratio:.3f}", f"{cpu:.2f}"]
        else:
            row += ["-", "-", "-"]
        for b in ("BM_spawn_join", "BM_call_soon"):
            ns = statistics.median(m[b] for m in micro[n])
            ratio = statistics.median(micro[n][i][b] / micro["off"][i][b] for i in range(a.rounds))
            row += [f"{ns:.1f}", f"{ratio:.3f}"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
