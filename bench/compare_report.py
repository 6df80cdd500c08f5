"""The report half of bench/compare: the Markdown tables, the PNG charts and the list
of workloads where eddy is not ahead of the best peer. Imported by bench/compare;
takes the figures it measured and writes nothing else.

Figures are per-run dicts from bench/compare's drive() (rps, mibs, p50, p99, p999,
cpu_us, cpu_util, errors); a table shows the median of each over the rounds.
"""
import os
import statistics

MICRO_ROWS = [  # key, what one operation is, unit
    ("call_soon", "schedule a callback and run it", "ns"),
    ("spawn_join", "spawn an empty task, await it", "ns"),
    ("timer_1M", "arm + cancel a timer, 1,000,000 others armed", "ns"),
    ("offload_p50", "to_thread / spawn_blocking round trip, p50", "us"),
    ("process_64_p50", "process-pool round trip 64 B, p50", "us"),
    ("process_64k_p50", "process-pool round trip 64 KiB, p50", "us"),
]


def round_ratio(figs, ref_figs, key, higher_better=True):
    """The median over rounds of figs' key relative to ref_figs' in the same round
    (> 1: better than the reference). Pairing by round keeps a machine whose load
    drifts between rounds from moving the ratio."""
    ref = {f.get("round"): f.get(key) for f in ref_figs}
    out = []
    for f in figs:
        v, rv = f.get(key), ref.get(f.get("round"))
        if v and rv:
            out.append(v / rv if higher_better else rv / v)
    return statistics.median(out) if out else None


def med(figs, key):
    vals = [f[key] for f in figs if f.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(x, unit=""):
    if x is None:
        return "—"
    if unit == "rps" or unit == "B":
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def report(path_md, charts_dir, info, args, servers, echo, proxy_list, proxy, mem, micro,
           elapsed, echo_workloads, stream=None):
    labels = {s[0]: s[1] for s in servers}
    labels.update({p[0]: p[1] for p in proxy_list})
    labels["direct"] = "no proxy (load straight to the echo backend)"
    L = []
    add = L.append
    add(f"# bench/compare: {info['date']} on {info['host']}")
    add("")
    add(f"eddy {info['eddy_commit']} ({info['eddy_tree']}), mode {'quick' if args.quick else 'full'}: "
        f"{args.rounds} round(s) × {args.secs} s per workload (+{args.warmup} s warm-up), "
        "servers alternated round by round (every other round in reverse), figures are "
        "medians over rounds and ratios medians of the per-round ratios; "
        f"run took {elapsed / 60:.1f} min.")
    add("")
    add(f"Machine: {info['cpu']}, {info['memory']}, kernel {info['kernel']}; "
        f"load average {' '.join(info['loadavg_start'])} at start, "
        f"{' '.join(info.get('loadavg_end', ['?']))} at the end. {info['compiler']}.")
    if float(info["loadavg_start"][0]) > 1.0:
        add("")
        add(f"**The machine was busy** (1-minute load average {info['loadavg_start'][0]} on "
            f"{info['cpu'].split(', ')[-1]}): other work shared both CPUs, so absolute figures are "
            "low and noisy; ratios within one round are the better guide.")
    add("Versions: " + "; ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".")
    add("")
    add("Server pinned to CPU 0, `echo_load` (plain epoll, no eddy) to CPU 1, 127.0.0.1. "
        "CPU µs/req is the server's utime+stime (its whole process tree, from /proc/PID/stat) "
        "over the measured window divided by the requests in it.")
    add("")
    add("Reproduce: `bench/compare" + (" --quick" if args.quick else "") + "`")
    add("")
    headline = {}

    def table(title, what, res, ref, metrics, chart_key, chart_label, higher_better=True):
        add(f"## {title}")
        add("")
        add(what)
        add("")
        names = [n for n in res if res[n]]
        missing = [n for n in res if not res[n]]
        cols = [m[1] for m in metrics]
        add(f"| server | {' | '.join(cols)} | vs {ref} | runs |")
        add("|---|" + "---|" * (len(cols) + 2))
        ratios = {}
        for n in names:
            r = round_ratio(res[n], res.get(ref, []), chart_key, higher_better)
            if r:
                ratios[n] = r
            cells = [fmt(med(res[n], m[0]), m[2]) for m in metrics]
            errs = sum(f["errors"] for f in res[n])
            add(f"| {n} | {' | '.join(cells)} | {fmt(ratios.get(n))}× | {len(res[n])}"
                + (f" ({errs} errors)" if errs else "") + " |")
        for n in missing:
            add(f"| {n} | " + " | ".join("no result" for _ in cols) + " | — | 0 |")
        add("")
        add(f"Ratio: {'higher' if higher_better else 'lower'} {chart_label.split(' (')[0]} is better; "
            f"vs {ref} > 1 means better than {ref}.")
        add("")
        headline[title] = {"ratios": ratios, "values": {n: med(res[n], chart_key) for n in names},
                           "higher_better": higher_better}
        if charts_dir:
            chart(charts_dir, title, {n: med(res[n], chart_key) for n in names}, chart_label, ref)

    rps_metrics = [("rps", "req/s", "rps"), ("p50", "p50 µs", ""), ("p99", "p99 µs", ""),
                   ("p999", "p99.9 µs", ""), ("cpu_us", "CPU µs/req", "")]
    ref = "reference-epoll"
    for w in echo:
        args_w, what = echo_workloads[w]
        what = f"{what} (`echo_load {' '.join(args_w)}`)."
        if w == "E1":
            table(w, what, echo[w], ref, rps_metrics, "p50", "p50 latency (µs)", higher_better=False)
        elif w == "E3":
            m = [("rps", "achieved req/s", "rps"), ("rate_pct", "% of rate", ""),
                 ("cpu_us", "CPU µs/req", ""),
                 ("cpu_util", "server CPU", ""), ("p50", "p50 µs", ""), ("p99", "p99 µs", "")]
            table(w, what + " A server that cannot reach the rate is saturated: its CPU/req is "
                  "then its closed-loop cost.", echo[w], ref, m, "cpu_us", "CPU µs per request",
                  higher_better=False)
        elif w == "E5" or w.startswith("E4"):
            m = [("mibs", "MiB/s each way", ""), ("rps", "req/s", "rps"), ("p99", "p99 µs", ""),
                 ("cpu_us", "CPU µs/req", ""), ("cpu_us_mib", "CPU µs/MiB", "")]
            table(w, what, echo[w], ref, m, "mibs", "MiB/s each way")
        else:
            table(w, what, echo[w], ref, rps_metrics, "rps", "req/s")
    if proxy:
        pref = "haproxy" if proxy["P1-E2"].get("haproxy") else "direct"
        add("## P1 proxy")
        add("")
        add("Each proxy on CPU 0 relays to `epoll_echo_server` on CPU 1 (next to the load); "
            "added latency is the proxy's E1 p50 minus the direct E1 p50 in the same round set.")
        add("")
        direct_p50 = med(proxy["P1-E1"].get("direct", []), "p50")
        add("| proxy | added p50 µs (1 conn) | E2-100 req/s | E2-100 p99 µs | E2-100 CPU µs/req "
            "| E5 MiB/s | E5 CPU µs/req | E2-100 vs " + pref + " |")
        add("|---|---|---|---|---|---|---|---|")
        ratios = {}
        for n in proxy["P1-E2"]:
            e1, e2, e5 = (proxy[k].get(n, []) for k in ("P1-E1", "P1-E2", "P1-E5"))
            if not e2:
                add(f"| {n} | no result | | | | | | |")
                continue
            added = med(e1, "p50") - direct_p50 if (e1 and direct_p50 and n != "direct") else None
            rps = med(e2, "rps")
            r = round_ratio(e2, proxy["P1-E2"].get(pref, []), "rps")
            if r:
                ratios[n] = r
            add(f"| {n} | {fmt(added)} | {fmt(rps, 'rps')} | {fmt(med(e2, 'p99'))} | "
                f"{fmt(med(e2, 'cpu_us'))} | {fmt(med(e5, 'mibs'))} | {fmt(med(e5, 'cpu_us'))} | "
                f"{fmt(ratios.get(n))}× |")
        add("")
        add("CPU µs/req is the proxy's own CPU (for `direct`: the echo backend's).")
        add("")
        if proxy.get("P2-1M"):
            p2ref = "haproxy" if proxy["P2-1M"].get("haproxy") else "direct"
            add("## P2 proxied 1 MiB responses")
            add("")
            add("10 connections × 1 MiB echoed through each proxy to `epoll_echo_server`.")
            add("")
            add(f"| proxy | MiB/s each way | CPU µs/MiB | vs {p2ref} |")
            add("|---|---|---|---|")
            p2r = {}
            for n, figs in proxy["P2-1M"].items():
                if not figs:
                    add(f"| {n} | no result | | |")
                    continue
                r = round_ratio(figs, proxy["P2-1M"].get(p2ref, []), "mibs")
                if r:
                    p2r[n] = r
                add(f"| {n} | {fmt(med(figs, 'mibs'))} | {fmt(med(figs, 'cpu_us_mib'))} | "
                    f"{fmt(p2r.get(n))}× |")
            add("")
            headline["P2"] = {"ratios": {k: v for k, v in p2r.items() if k != "direct"},
                              "values": {n: med(f, "mibs") for n, f in proxy["P2-1M"].items()
                                         if f and n != "direct"},
                              "higher_better": True}
        headline["P1"] = {"ratios": {k: v for k, v in ratios.items() if k != "direct"},
                          "values": {n: med(proxy["P1-E2"][n], "rps") for n in proxy["P1-E2"]
                                     if proxy["P1-E2"][n] and n != "direct"},
                          "higher_better": True}
        headline["P1 added latency"] = {
            "values": {n: med(proxy["P1-E1"][n], "p50") - direct_p50
                       for n in proxy["P1-E1"] if proxy["P1-E1"][n] and n != "direct" and direct_p50},
            "higher_better": False}
        if charts_dir:
            chart(charts_dir, "P1", headline["P1"]["values"], "req/s through the proxy (100 × 1 KiB)",
                  pref)
    if stream:
        add("## S1 one-way stream")
        add("")
        add("`stream_push` (4 connections, blocking 256 KiB sends, no eddy) into each sink; "
            "`reference-sink` is a hand-written epoll loop reading 256 KiB at a time; eddy is "
            "`echo_server --discard` (receive() and drop).")
        add("")
        add("| sink | MiB/s | CPU µs/MiB | vs reference-sink | runs |")
        add("|---|---|---|---|---|")
        sr = {}
        for n, figs in stream.items():
            if not figs:
                add(f"| {n} | no result | | — | 0 |")
                continue
            r = round_ratio(figs, stream.get("reference-sink", []), "mibs")
            if r:
                sr[n] = r
            add(f"| {n} | {fmt(med(figs, 'mibs'))} | {fmt(med(figs, 'cpu_us_mib'))} | "
                f"{fmt(sr.get(n))}× | {len(figs)} |")
        add("")
    if mem:
        add("## M1 idle memory")
        add("")
        add(f"`idle_conns` opens {args.conns_m1:,} connections, echoes once on each, then holds "
            "them idle and reads the server's VmRSS.")
        add("")
        add("| server | RSS before KiB | RSS after KiB | bytes per idle connection |")
        add("|---|---|---|---|")
        for n, j in mem.items():
            add(f"| {n} | {j['rss_before_kib']:,} | {j['rss_after_kib']:,} | {j['bytes_per_conn']:,.0f} |")
        add("")
        headline["M1"] = {"values": {n: j["bytes_per_conn"] for n, j in mem.items()},
                          "higher_better": False}
        if charts_dir:
            chart(charts_dir, "M1", headline["M1"]["values"], "bytes per idle connection", None)
    if micro:
        add("## Micro-suite")
        add("")
        add("Same machine, same run; eddy and Asio under Google Benchmark, tokio and Python "
            "timed by their own loops (median of 5 batches). ns per operation unless the row "
            "says p50 µs. eddy's offload row is `BM_offload_roundtrip/0/0` (blocking pool, "
            "adaptive); Asio has no thread-offload or process-pool primitive.")
        add("")
        order = [c for c in ("eddy", "Boost.Asio", "tokio", "asyncio", "uvloop") if c in micro]
        add("| operation | " + " | ".join(order) + " |")
        add("|---|" + "---|" * len(order))
        for key, what, unit in MICRO_ROWS:
            cells = [fmt(micro[c].get(key)) for c in order]
            add(f"| {what} ({'µs' if unit == 'us' else 'ns'}) | " + " | ".join(cells) + " |")
            headline[f"micro: {what}"] = {"values": {c: micro[c].get(key) for c in order},
                                          "higher_better": False}
        add("")
    if charts_dir:
        summary_chart(charts_dir, headline, ["E2-16", "E2-100", "E2-1000", "E3", "E4-10K", "E5"])
        summary_chart(charts_dir, headline, ["E4-1K", "E4-10K", "E4-100K", "E4-1M", "E5"], "bulk.png",
                      "Few connections, messages from 1 KiB to 1 MiB, and streaming (E5)")
    behind = where_behind(headline)
    add("## Where eddy is not ahead of the best peer")
    add("")
    if behind:
        for line in behind:
            add(f"- {line}")
    else:
        add("- nowhere in this run.")
    add("")
    if charts_dir:
        add("## Charts")
        add("")
        rel = os.path.basename(charts_dir)
        for f in sorted(os.listdir(charts_dir)):
            if f.endswith(".png"):
                add(f"![{f[:-4]}]({rel}/{f})")
        add("")
    with open(path_md, "w") as f:
        f.write("\n".join(L))
    return headline


NOT_PEERS = ("eddy", "reference", "direct")  # every other contender is a peer


def where_behind(headline):
    """One line per workload where eddy's best backend is not ahead of the best peer.
    Where per-round ratios to a reference exist they are compared (a drifting load
    cancels out); otherwise the medians themselves."""
    out = []
    for title, h in headline.items():
        by_ratio = bool(h.get("ratios"))
        vals = h["ratios"] if by_ratio else h["values"]
        higher = True if by_ratio else h["higher_better"]
        eddy = {n: v for n, v in vals.items() if n.startswith("eddy") and v is not None}
        peers = {n: v for n, v in vals.items()
                 if not n.startswith(NOT_PEERS) and v is not None}
        if not eddy or not peers:
            continue
        pick = max if higher else min
        e = pick(eddy, key=eddy.get)
        p = pick(peers, key=peers.get)
        if higher:
            ratio = eddy[e] / peers[p]
        else:
            ratio = peers[p] / eddy[e] if eddy[e] > 0 else float("inf")
        if ratio <= 1.0:
            raw = h["values"]
            out.append(f"{title}: best eddy ({e}) at {ratio:.2f}× the best peer ({p}); "
                       f"medians {fmt(raw.get(e))} vs {fmt(raw.get(p))}, "
                       f"{'higher' if h['higher_better'] else 'lower'} is better")
    return out


def summary_chart(charts_dir, headline, keys, name="summary.png",
                  title="Echo servers, median per-round ratio to the reference"):
    """summary.png (or `name`): every echo server's per-round ratio to the reference,
    one group of bars per server and one bar per workload (E3 is CPU per request,
    inverted)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    keys = [k for k in keys if headline.get(k, {}).get("ratios")]
    if not keys:
        return
    names = list(headline[keys[0]]["ratios"])
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(names) + 2), 4))
    for i, k in enumerate(keys):
        r = headline[k]["ratios"]
        ax.bar([x + i * width for x in range(len(names))], [r.get(n, 0) for n in names], width,
               label=k + (" (CPU/req)" if k == "E3" else ""))
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))])
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("× the hand-written epoll loop (higher is better)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=len(keys))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(charts_dir, name), dpi=110)
    plt.close(fig)


def chart(charts_dir, title, values, ylabel, ref):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = [n for n, v in values.items() if v is not None]
    if not names:
        return
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(names) + 2), 3.6))
    colors = ["#d62728" if n.startswith("eddy") else "#7f7f7f" if n.startswith(("reference", "direct"))
              else "#1f77b4" for n in names]
    bars = ax.bar(range(len(names)), [values[n] for n in names], color=colors)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}" + (f" (reference: {ref})" if ref else ""), fontsize=10)
    for b, n in zip(bars, names):
        ax.annotate(fmt(values[n]), (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(charts_dir, f"{title.replace(' ', '_')}.png"), dpi=110)
    plt.close(fig)
