"""The body of bench/net/compare_backends.sh (run that; see its header for usage).

Python 3 standard library only. Every contender is measured in the same run,
alternated A B C D E A B C D E ..., and reported as medians with ratios to the
hand-written epoll reference (BENCHMARKS.md "Servers").
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def die(msg, code=2):
    log("compare_backends: " + msg)
    sys.exit(code)


# ---------------------------------------------------------------- processes

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
LIVE = {}  # pid -> Popen: everything started here that may still run


def _die_with_parent():
    # Children (taskset execs the server, which keeps this) get SIGKILL if this
    # script dies without running its cleanup (SIGKILL, OOM kill).
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, **kw):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, **kw)
    LIVE[p.pid] = p
    return p


def stop(p, grace=5.0):
    """SIGINT (the servers' clean stop), then SIGKILL after `grace` seconds."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        except ProcessLookupError:
            pass
    LIVE.pop(p.pid, None)
    return p.returncode


def kill_all():
    for p in list(LIVE.values()):
        if p.poll() is None:
            p.kill()
    for p in list(LIVE.values()):
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    LIVE.clear()


class StartError(RuntimeError):
    pass


class Server:
    """A server (or proxy) started pinned to one CPU; waits for "listening on H P"."""

    def __init__(self, name, argv, cpu, timeout=10.0):
        self.name = name
        self.out = tempfile.TemporaryFile(mode="w+")
        self.proc = spawn(["taskset", "-c", str(cpu)] + argv, stdout=self.out, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid  # taskset execs the program: same pid
        deadline = time.monotonic() + timeout
        self.port = None
        while time.monotonic() < deadline:
            m = re.search(r"^listening on \S+ (\d+)", self._text(), re.M)
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        stop(self.proc, grace=1.0)
        tail = self._text().strip().splitlines()[-3:]
        self.out.close()
        raise StartError("%s did not start (exit %s): %s" % (name, self.proc.returncode, " / ".join(tail) or "no output"))

    def _text(self):
        self.out.seek(0)
        return self.out.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        rc = stop(self.proc)
        self.out.close()
        return rc


def clk_tck():
    try:
        return int(subprocess.check_output(["getconf", "CLK_TCK"], text=True).strip())
    except (OSError, ValueError, subprocess.CalledProcessError):
        return os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """utime + stime + cutime + cstime of PID, in clock ticks (/proc/PID/stat 14-17)."""
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()  # fields from 3 (state) on
    return sum(int(fields[i - 3]) for i in (14, 15, 16, 17))


def letter(i):
    return chr(65 + i) if i < 26 else str(i + 1)


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


# ---------------------------------------------------------------- contenders


class Contender:
    def __init__(self, key, name, kind, build, backend=None, baseline=None):
        self.key = key          # short id, used in --only
        self.name = name        # row label
        self.kind = kind        # "echo", "ref" or "proxy"
        self.build = build      # build directory with the binary
        self.backend = backend  # --backend value for eddy samples
        self.baseline = baseline  # label of the --baseline build, or None
        self.rounds = []        # one dict per round (or None when that round failed)
        self.unavailable = None  # why it could not run at all


def sample(build, name):
    return os.path.join(build, "samples", name)


def bench_bin(build, name):
    return os.path.join(build, "bench", name)


def start_contender(c, a):
    """Starts what c needs; returns (servers to stop afterwards, the measured one, port)."""
    if c.kind == "echo":
        s = Server(c.name, [sample(c.build, "echo_server"), "--host", HOST, "--port", "0",
                            "--backend", c.backend], a.server_cpu)
        return [s], s, s.port
    if c.kind == "ref":
        s = Server(c.name, [bench_bin(a.build, "epoll_echo_server"), "--host", HOST, "--port", "0"],
                   a.server_cpu)
        return [s], s, s.port
    # proxy: the reference echo server behind it shares the load's CPU.
    backend = Server("reference behind the proxy",
                     [bench_bin(a.build, "epoll_echo_server"), "--host", HOST, "--port", "0"], a.load_cpu)
    try:
        argv = [sample(c.build, "tcp_proxy"), "--listen", "%s:0" % HOST,
                "--upstream", "%s:%d" % (HOST, backend.port), "--backend", c.backend, "--grace", "1"]
        if a.splice:
            argv.append("--splice")
        p = Server(c.name, argv, a.server_cpu)
    except Exception:
        backend.stop()
        raise
    return [p, backend], p, p.port


def measure(c, a):
    servers, measured, port = start_contender(c, a)
    load = None
    try:
        argv = ["taskset", "-c", str(a.load_cpu), bench_bin(a.build, "echo_load"), HOST, str(port),
                "--conns", str(a.conns), "--size", str(a.size), "--secs", str(a.secs),
                "--warmup", str(a.warmup), "--json"]
        t0 = time.monotonic()
        load = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # CPU sampled at the edges of echo_load's measured window (after its warm-up;
        # the second sample a little before its end, so it is still under load);
        # CPU per request = (CPU time / wall time) / (requests / s), so a few ms of
        # misalignment between the two clocks does not bias it.
        sleep_until(t0 + a.warmup)
        c0, w0 = cpu_ticks(measured.pid), time.monotonic()
        sleep_until(t0 + a.warmup + a.secs - min(0.2, 0.05 * a.secs))
        c1, w1 = cpu_ticks(measured.pid), time.monotonic()
        late = load.poll() is not None  # this script woke after the load had ended
        try:
            out, err = load.communicate(timeout=a.warmup + a.secs + 30)
        except subprocess.TimeoutExpired:
            raise RuntimeError("echo_load did not finish in time")
        died = [s.name for s in servers if not s.alive()]
        if load.returncode not in (0, 1):
            raise RuntimeError("echo_load exit %d: %s" % (load.returncode, err.strip()[-200:]))
        r = json.loads(out.strip().splitlines()[-1])
    finally:
        if load is not None:
            if load.poll() is None:
                load.kill()
                load.communicate()
            LIVE.pop(load.pid, None)
        for s in servers:
            s.stop()
    if died:
        raise RuntimeError("%s exited during the run" % ", ".join(died))
    rps = float(r["req_per_s"])
    cpu_s = (c1 - c0) / TCK
    if rps <= 0:
        raise RuntimeError("no request completed")
    if late:
        log("  (CPU sample taken after the load ended; this round's CPU figure is left out)")
    return {
        "rps": rps,
        "p99": float(r["latency_us"]["p99"]),
        "cpu_us": None if late else cpu_s / (w1 - w0) / rps * 1e6,
        "cpu_util": cpu_s / (w1 - w0),
        "errors": int(r["errors"]["total"]),
    }


# ---------------------------------------------------------------- reporting


def med(c, field):
    v = [r[field] for r in c.rounds if r and r[field] is not None]
    return statistics.median(v) if v else None


def ratio(x, y):
    return x / y if x is not None and y else None


def fmt(v, spec, width=0):
    s = "n/a" if v is None else format(v, spec)
    return s.rjust(width) if width else s


def paired(a_c, b_c, field):
    """Median of per-round ratios a/b (both measured in the same round)."""
    v = [x[field] / y[field] for x, y in zip(a_c.rounds, b_c.rounds)
         if x and y and x[field] is not None and y[field]]
    return statistics.median(v) if v else None


def table_rows(cs, ref, uring_proxy):
    rows = []
    for c in cs:
        rps, p99, cpu = med(c, "rps"), med(c, "p99"), med(c, "cpu_us")
        ok = [r for r in c.rounds if r]
        spread = (max(r["rps"] for r in ok) - min(r["rps"] for r in ok)) / rps * 100 if ok and rps else None
        rows.append({
            "name": c.name + (" (reference)" if c.kind == "ref" else ""),
            "rps": rps, "x_ref": ratio(rps, med(ref, "rps")) if ref else None,
            "x_proxy": ratio(rps, med(uring_proxy, "rps")) if c.kind == "proxy" and uring_proxy else None,
            "p99": p99, "cpu": cpu, "cpu_x_ref": ratio(cpu, med(ref, "cpu_us")) if ref else None,
            "spread": spread, "n": len(ok), "errors": sum(r["errors"] for r in ok),
            "why": c.unavailable,
        })
    return rows


def checks(by_key, baselines):
    """(label, value of medians, median of per-round ratios, target) for issue 8's acceptance."""
    out = []

    def add(label, a, b, field, target):
        if a in by_key and b in by_key and not by_key[a].unavailable and not by_key[b].unavailable:
            out.append((label, ratio(med(by_key[a], field), med(by_key[b], field)),
                        paired(by_key[a], by_key[b], field), target))

    add("echo_server(epoll) / reference, req/s", "echo-epoll", "ref", "rps", ">= 0.95")
    add("echo_server(epoll) / reference, CPU-us/req", "echo-epoll", "ref", "cpu_us", "<= 1.10")
    add("echo_server(io_uring) / reference, req/s", "echo-io_uring", "ref", "rps", "")
    add("tcp_proxy(epoll) / tcp_proxy(io_uring), req/s", "proxy-epoll", "proxy-io_uring", "rps", ">= 0.80")
    add("echo_server(libuv) / echo_server(epoll), req/s", "echo-libuv", "echo-epoll", "rps", ">= 0.85")
    add("tcp_proxy(libuv) / tcp_proxy(epoll), req/s", "proxy-libuv", "proxy-epoll", "rps", ">= 0.85")
    for label in baselines:
        for kind, what in (("echo", "echo_server"), ("proxy", "tcp_proxy")):
            for be in ("io_uring", "epoll"):
                k = "%s-%s" % (kind, be)
                add("%s(%s) / @%s, req/s" % (what, be, label), k, "%s@%s" % (k, label), "rps",
                    ">= 0.98" if be == "io_uring" else "")
                add("%s(%s) / @%s, CPU-us/req" % (what, be, label), k, "%s@%s" % (k, label), "cpu_us", "")
    return out


def print_table(rows, chk, a, header):
    print("\n".join(header))
    print()
    w = max(len(r["name"]) for r in rows) + 2
    print("%-*s %10s %7s %10s %9s %11s %9s %8s" % (w, "name", "req/s", "x ref", "x uring-px", "p99 us",
                                                  "CPU-us/req", "CPU x ref", "spread"))
    for r in rows:
        if r["why"]:
            print("%-*s %s" % (w, r["name"], "not run: " + r["why"]))
            continue
        note = ""
        if r["n"] < a.rounds:
            note += "  (%d of %d rounds)" % (r["n"], a.rounds)
        if r["errors"]:
            note += "  (%d echo_load errors)" % r["errors"]
        print("%-*s %10s %7s %10s %9s %11s %9s %8s%s" % (
            w, r["name"], fmt(r["rps"], ",.0f"), fmt(r["x_ref"], ".2f"), fmt(r["x_proxy"], ".2f") if r["x_proxy"] else "",
            fmt(r["p99"], ",.0f"), fmt(r["cpu"], ".2f"), fmt(r["cpu_x_ref"], ".2f"),
            fmt(r["spread"], ".1f") + "%" if r["spread"] is not None else "n/a", note))
    if chk:
        print()
        print("ratios: of medians, [median of per-round ratios], issue 8 target")
        lw = max(len(c[0]) for c in chk) + 2
        for label, v, p, t in chk:
            print("  %-*s %6s  [%s]  %s" % (lw, label, fmt(v, ".3f"), fmt(p, ".3f"), t))


def git_desc(path):
    try:
        sha = subprocess.check_output(["git", "-C", path, "rev-parse", "--short", "HEAD"], text=True,
                                      stderr=subprocess.DEVNULL).strip()
        dirty = subprocess.check_output(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
                                        text=True, stderr=subprocess.DEVNULL).strip()
        return sha + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_info(build):
    """(source tree's commit now, buildtype) from meson's introspection files."""
    src, bt = None, "unknown"
    try:
        with open(os.path.join(build, "meson-info", "meson-info.json")) as f:
            src = json.load(f)["directories"]["source"]
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            bt = next((o["value"] for o in json.load(f) if o["name"] == "buildtype"), "unknown")
    except (OSError, ValueError, KeyError):
        pass
    return (git_desc(src) if src else "unknown"), bt


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            return m.group(1) if m else platform.processor()
    except OSError:
        return "unknown"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------- M1


def memory(a, targets):
    res = []
    for name, build, backend in targets:
        if backend:
            argv = [sample(build, "echo_server"), "--host", HOST, "--port", "0", "--backend", backend]
        else:
            argv = [bench_bin(a.build, "epoll_echo_server"), "--host", HOST, "--port", "0"]
        try:
            s = Server(name, argv, a.server_cpu)
        except StartError as e:
            res.append((name, None, str(e)))
            continue
        try:
            out = subprocess.run([bench_bin(a.build, "idle_conns"), HOST, str(s.port), "--pid", str(s.pid),
                                  "--conns", str(a.idle_conns), "--settle", "2", "--json"],
                                 capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
            r = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else None
            res.append((name, r, None if r else out.stderr.strip()[-200:]))
        except (subprocess.TimeoutExpired, ValueError) as e:
            res.append((name, None, str(e)))
        finally:
            s.stop()
    return res


def mem_lines(res):
    out = []
    for name, r, why in res:
        if r is None:
            out.append("  %-32s n/a (%s)" % (name, why))
        else:
            out.append("  %-32s %6d bytes per connection  (RSS %s -> %s KiB, %d conns, %d failed)" % (
                name, r["bytes_per_conn"], format(r["rss_before_kib"], ","), format(r["rss_after_kib"], ","),
                r["conns"], r["failed"]))
    return out


# ---------------------------------------------------------------- markdown


def write_markdown(path, a, cs, rows, chk, header_facts, mem, cmdline):
    md = []
    md.append("# eddy backends side by side (bench/net/compare_backends.sh)")
    md.append("")
    for k, v in header_facts:
        md.append("- %s: %s" % (k, v))
    md.append("- reproduce: `%s`" % cmdline)
    md.append("")
    md.append("## Echo and proxy, %d connections x %d B, closed loop (medians of %d rounds)" % (a.conns, a.size, a.rounds))
    md.append("")
    md.append("| name | req/s | × reference | × tcp_proxy(io_uring) | p99 µs | CPU-µs/req | CPU × reference | spread |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["why"]:
            md.append("| %s | not run: %s |  |  |  |  |  |  |" % (r["name"], r["why"]))
            continue
        md.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"] + (" (%d errors)" % r["errors"] if r["errors"] else ""), fmt(r["rps"], ",.0f"),
            fmt(r["x_ref"], ".2f"), fmt(r["x_proxy"], ".2f") if r["x_proxy"] else "",
            fmt(r["p99"], ",.0f"), fmt(r["cpu"], ".2f"), fmt(r["cpu_x_ref"], ".2f"),
            fmt(r["spread"], ".1f") + " %" if r["spread"] is not None else "n/a"))
    md.append("")
    md.append("Spread: (max − min) / median of req/s over the rounds. Proxy rows: the reference echo "
              "server behind the proxy runs on CPU %d with the load; CPU counts the proxy process only."
              % a.load_cpu)
    if chk:
        md.append("")
        md.append("| ratio | of medians | median of per-round ratios | issue 8 target |")
        md.append("|---|---:|---:|---|")
        for label, v, p, t in chk:
            md.append("| %s | %s | %s | %s |" % (label, fmt(v, ".3f"), fmt(p, ".3f"), t.replace(">=", "≥").replace("<=", "≤")))
    md.append("")
    md.append("## Every round (req/s; p99 µs; CPU-µs/req)")
    md.append("")
    md.append("| name | " + " | ".join("round %d" % (i + 1) for i in range(a.rounds)) + " |")
    md.append("|---|" + "---:|" * a.rounds)
    for c in cs:
        cells = []
        for i in range(a.rounds):
            r = c.rounds[i] if i < len(c.rounds) else None
            cells.append("%s; %s; %s" % (fmt(r["rps"], ",.0f"), fmt(r["p99"], ",.0f"), fmt(r["cpu_us"], ".2f")) if r else "—")
        md.append("| %s | %s |" % (c.name, " | ".join(cells)))
    if mem:
        md.append("")
        md.append("## M1: RSS per idle connection at %s connections (idle_conns)" % format(a.idle_conns, ","))
        md.append("")
        md.append("| server | RSS before → after | per connection |")
        md.append("|---|---|---:|")
        for name, r, why in mem:
            if r is None:
                md.append("| %s | n/a (%s) | |" % (name, why))
            else:
                md.append("| %s | %s KiB → %s KiB | %s bytes |" % (name, format(r["rss_before_kib"], ","),
                                                                 format(r["rss_after_kib"], ","), format(r["bytes_per_conn"], ",.0f")))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(md) + "\n")


# ---------------------------------------------------------------- main

ALL_KEYS = ["echo-epoll", "echo-io_uring", "echo-libuv", "ref", "proxy-epoll", "proxy-io_uring",
            "proxy-libuv"]


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="compare_backends.sh",
        description="eddy's echo_server and tcp_proxy on epoll and io_uring next to the hand-written epoll "
                    "echo loop, side by side in one run (alternated A B C D E ..., medians).",
        epilog="Legacy form: compare_backends.sh [BUILD_DIR] [ROUNDS] [SECS].")
    p.add_argument("pos", nargs="*", metavar="BUILD_DIR [ROUNDS [SECS]]", help=argparse.SUPPRESS)
    p.add_argument("--build", help="build directory with samples/ and bench/ (default: build)")
    p.add_argument("--rounds", type=int, help="rounds, each contender once per round (default 5)")
    p.add_argument("--secs", type=float, help="measured seconds per run (default 4)")
    p.add_argument("--warmup", type=float, default=0.5, help="echo_load warm-up seconds before that (default 0.5)")
    p.add_argument("--conns", type=int, default=100, help="connections (default 100)")
    p.add_argument("--size", type=int, default=1024, help="message bytes (default 1024)")
    p.add_argument("--only", default=",".join(ALL_KEYS),
                   help="contenders, comma-separated, from %s (default: all)" % ",".join(ALL_KEYS))
    p.add_argument("--baseline", action="append", default=[], metavar="[LABEL=]DIR",
                   help="another build directory whose eddy binaries run as extra contenders, alternated "
                        "with the others, labelled @LABEL (default label: baseline); repeatable")
    p.add_argument("--baseline-rows", default="echo-io_uring,proxy-io_uring",
                   help="which eddy contenders to add per --baseline, from echo-epoll,echo-io_uring,"
                        "proxy-epoll,proxy-io_uring (default: echo-io_uring,proxy-io_uring)")
    p.add_argument("--splice", action="store_true", help="run tcp_proxy with --splice")
    p.add_argument("--no-memory", action="store_true", help="skip M1 (RSS per idle connection)")
    p.add_argument("--idle-conns", type=int, default=10000, help="M1 connections (default 10000)")
    p.add_argument("--markdown", nargs="?", const="compare_backends.md", metavar="FILE",
                   help="also write the results as Markdown; a bare name goes into bench/results/ "
                        "(default name: compare_backends.md)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU for the server or proxy (default 0)")
    p.add_argument("--load-cpu", type=int, default=1,
                   help="CPU for echo_load and for the echo server behind the proxy (default 1)")
    a = p.parse_args(argv)
    if len(a.pos) > 3:
        p.error("at most BUILD_DIR ROUNDS SECS as positional arguments")
    pos = a.pos + [None] * (3 - len(a.pos))
    a.build = a.build or pos[0] or "build"
    try:
        a.rounds = a.rounds if a.rounds is not None else int(pos[1] or 5)
        a.secs = a.secs if a.secs is not None else float(pos[2] or 4)
    except ValueError:
        p.error("ROUNDS and SECS must be numbers")
    if not 1 <= a.rounds <= 100 or not 0 < a.secs <= 600 or not 0 <= a.warmup <= 60:
        p.error("--rounds 1..100, --secs (0, 600], --warmup [0, 60]")
    if not 1 <= a.conns <= 10000 or not 1 <= a.size <= 16 << 20 or not 1 <= a.idle_conns <= 100000:
        p.error("--conns 1..10000, --size 1..16 MiB, --idle-conns 1..100000")
    a.only = [k for k in a.only.split(",") if k]
    a.baseline_rows = [k for k in a.baseline_rows.split(",") if k]
    for k in a.only + a.baseline_rows:
        if k not in ALL_KEYS or (k == "ref" and k in a.baseline_rows):
            p.error("unknown contender %r" % k)
    bl = []
    for spec in a.baseline:
        label, _, d = spec.partition("=") if "=" in spec else ("baseline", "", spec)
        if not label or not re.fullmatch(r"[\w.+-]+", label):
            p.error("bad --baseline label in %r" % spec)
        if any(label == x for x, _ in bl):
            p.error("two --baseline builds labelled %r" % label)
        bl.append((label, d))
    a.baseline = bl
    if a.server_cpu == a.load_cpu:
        p.error("--server-cpu and --load-cpu must differ")
    return a


def main(argv):
    global TCK
    a = parse_args(argv)
    TCK = clk_tck()
    cmdline = shlex.join(["bench/net/compare_backends.sh"] + argv)

    cpus = os.sched_getaffinity(0)
    if a.server_cpu not in cpus or a.load_cpu not in cpus:
        die("needs CPUs %d and %d (this process may use %s)" % (a.server_cpu, a.load_cpu, sorted(cpus)))
    if not any(os.access(os.path.join(d, "taskset"), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
        die("needs taskset (util-linux)")

    cs = []
    names = {"echo-epoll": ("echo", "epoll", "echo_server(epoll)"),
             "echo-io_uring": ("echo", "io_uring", "echo_server(io_uring)"),
             "echo-libuv": ("echo", "libuv", "echo_server(libuv)"),
             "ref": ("ref", None, "epoll_echo_server"),
             "proxy-epoll": ("proxy", "epoll", "tcp_proxy(epoll)"),
             "proxy-io_uring": ("proxy", "io_uring", "tcp_proxy(io_uring)"),
             "proxy-libuv": ("proxy", "libuv", "tcp_proxy(libuv)")}
    for k in ALL_KEYS:
        if k in a.only:
            kind, be, name = names[k]
            cs.append(Contender(k, name, kind, a.build, be))
    for label, d in a.baseline:
        for k in ALL_KEYS:
            if k in a.baseline_rows:
                kind, be, name = names[k]
                cs.append(Contender("%s@%s" % (k, label), "%s @%s" % (name, label), kind, d, be, label))
    if not cs:
        die("no contenders")

    need = {bench_bin(a.build, "echo_load"), bench_bin(a.build, "epoll_echo_server")}
    if not a.no_memory:
        need.add(bench_bin(a.build, "idle_conns"))
    for c in cs:
        exe = sample(c.build, "echo_server" if c.kind == "echo" else "tcp_proxy")
        if c.kind == "ref" or os.access(exe, os.X_OK):
            continue
        if c.baseline:
            c.unavailable = "missing " + exe  # an older build may lack a sample: its rows say so
        else:
            need.add(exe)
    missing = sorted(f for f in need if not os.access(f, os.X_OK))
    if missing:
        die("missing %s (build first: meson setup DIR --buildtype=release && ninja -C DIR)" % ", ".join(missing))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # M1 needs 10,000+ fds each side

    per_run = a.warmup + a.secs + 4
    budget = a.rounds * len(cs) * per_run * 2 + (0 if a.no_memory else 4 * 100) + 120
    signal.alarm(int(budget))  # the whole run is bounded; SIGALRM ends it (servers are killed)

    src, bt = build_info(a.build)
    facts = [
        ("when", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", "%s, %d CPUs, kernel %s" % (cpu_model(), os.cpu_count(), platform.release())),
        ("build", "%s (buildtype %s; its source tree now at %s)" % (a.build, bt, src)),
    ]
    for label, d in a.baseline:
        s2, bt2 = build_info(d)
        facts.append(("baseline @" + label, "%s (buildtype %s; its source tree now at %s)" % (d, bt2, s2)))
    facts += [
        ("load", "bench/echo_load (plain epoll, no eddy), %d connections x %d B, closed loop, %g s measured "
                 "after %g s warm-up, on CPU %d" % (a.conns, a.size, a.secs, a.warmup, a.load_cpu)),
        ("servers", "on %s, pinned to CPU %d; proxy rows: tcp_proxy on CPU %d in front of epoll_echo_server, "
                    "which runs on CPU %d with the load%s" % (HOST, a.server_cpu, a.server_cpu, a.load_cpu,
                                                               " (tcp_proxy --splice)" if a.splice else "")),
        ("CPU per request", "utime+stime+cutime+cstime of the server (proxy rows: the proxy only) from "
                            "/proc/PID/stat at the edges of the measured window, CLK_TCK %d" % TCK),
    ]
    bad = [f for f in facts if "buildtype" in f[1] and "buildtype release" not in f[1]]
    if bad:
        log("compare_backends: warning: not a release build: " + "; ".join(f[1] for f in bad))
    la0 = loadavg()
    if float(la0.split()[0]) > 0.5 * len(cpus):
        log("compare_backends: warning: the machine is busy (load average %s): ratios hold better than "
            "absolute figures, and only within one run" % la0)
    log("compare_backends: %d contenders x %d rounds x %g s (bounded at %d s); load average %s" % (
        len(cs), a.rounds, a.warmup + a.secs, budget, la0))

    for rnd in range(1, a.rounds + 1):
        for i, c in enumerate(cs):
            if c.unavailable:
                c.rounds.append(None)
                continue
            try:
                r = measure(c, a)
            except (RuntimeError, OSError, ValueError, KeyError) as e:
                if isinstance(e, StartError) and not any(c.rounds):
                    c.unavailable = str(e)  # e.g. io_uring refused here: not tried again
                log("round %d %s %-34s failed: %s" % (rnd, letter(i), c.name, e))
                c.rounds.append(None)
                continue
            c.rounds.append(r)
            log("round %d %s %-34s %10s req/s  p99 %7s us  %6s CPU-us/req (%.0f%% CPU)%s" % (
                rnd, letter(i), c.name, format(r["rps"], ",.0f"), format(r["p99"], ",.0f"), fmt(r["cpu_us"], ".2f"),
                r["cpu_util"] * 100, "  %d errors" % r["errors"] if r["errors"] else ""))

    by_key = {c.key: c for c in cs}
    ref = by_key.get("ref")
    if ref and ref.unavailable:
        ref = None
    px = by_key.get("proxy-io_uring")
    if px and px.unavailable:
        px = None
    rows = table_rows(cs, ref, px)
    chk = checks(by_key, [label for label, _ in a.baseline])
    facts.append(("load average", "%s before, %s after the alternated runs (the machine is shared)" % (la0, loadavg())))
    header = ["eddy backends, side by side in one run: medians of %d rounds, alternated %s ..." % (
        a.rounds, " ".join(letter(i) for i in range(len(cs))))]
    header += ["  %s: %s" % f for f in facts]
    print()
    print_table(rows, chk, a, header)

    mem = []
    if not a.no_memory:
        targets = [("echo_server(io_uring)", a.build, "io_uring"), ("echo_server(epoll)", a.build, "epoll"),
                   ("epoll_echo_server", a.build, None)]
        for label, d in a.baseline:
            targets.append(("echo_server(io_uring) @" + label, d, "io_uring"))
        log("M1: %d idle connections per server ..." % a.idle_conns)
        mem = memory(a, targets)
        print()
        print("M1: RSS per idle connection at %s idle connections (idle_conns), server on CPU %d:" % (
            format(a.idle_conns, ","), a.server_cpu))
        print("\n".join(mem_lines(mem)))

    if a.markdown:
        path = a.markdown if os.sep in a.markdown else os.path.join(ROOT, "bench", "results", a.markdown)
        write_markdown(path, a, cs, rows, chk, facts, mem, cmdline)
        print()
        print("wrote " + (os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path))
    failed = all(c.unavailable for c in cs)
    return 1 if failed else 0


def _on_signal(signum, frame):
    raise SystemExit(128 + signum if signum != signal.SIGALRM else "compare_backends: time budget exceeded")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, _on_signal)
    try:
        rc = main(sys.argv[1:])
    finally:
        kill_all()  # no server outlives the script, whatever ended it
    sys.exit(rc)
