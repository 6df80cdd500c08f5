"""asyncio's and uvloop's side of the micro-suite (bench/compare). One JSON line per
(loop, benchmark): {"loop", "name", "ns_per_op"[, "p50_us", "p99_us"]}.

    call_soon           schedule a callback and run it (256 queued per loop turn)
    create_task_await   create_task(empty()) and await it, from a task
    call_later_cancel   call_later + cancel with 1,000,000 other timers armed
    to_thread           await asyncio.to_thread(noop), one in flight: p50/p99
    process_64B/64KiB   ProcessPoolExecutor round trip (run_in_executor), one
                        worker, one in flight: p50/p99

    /usr/bin/python3 micro.py [--quick] [--loops asyncio,uvloop]
"""
import argparse
import asyncio
import concurrent.futures
import json
import random
import statistics
import time


def emit(loop_name, name, ns, samples=None):
    row = {"loop": loop_name, "name": name, "ns_per_op": round(ns, 1)}
    if samples:
        samples.sort()
        row["p50_us"] = round(samples[len(samples) // 2] / 1000, 2)
        row["p99_us"] = round(samples[len(samples) * 99 // 100] / 1000, 2)
    print(json.dumps(row), flush=True)


def batches(fn, n, reps=5):
    return statistics.median(fn(n) for _ in range(reps))


def bench_call_soon(loop, n):
    count = [0]

    def cb():
        count[0] += 1

    async def body():
        t0 = time.perf_counter_ns()
        for i in range(0, n, 256):
            for _ in range(256):
                loop.call_soon(cb)
            await asyncio.sleep(0)  # one loop turn runs the 256
        return (time.perf_counter_ns() - t0) / n

    return loop.run_until_complete(body())


async def empty():
    pass


def bench_create_task(loop, n):
    async def body():
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await loop.create_task(empty())
        return (time.perf_counter_ns() - t0) / n

    return loop.run_until_complete(body())


def bench_call_later_cancel(loop, n, live):
    rnd = random.Random(42)
    armed = [loop.call_later(1000 + rnd.random() * 3600, int) for _ in range(live)]
    delays = [1 + rnd.random() * 100 for _ in range(1024)]

    def run(n):
        t0 = time.perf_counter_ns()
        for i in range(n):
            loop.call_later(delays[i & 1023], int).cancel()
        return (time.perf_counter_ns() - t0) / n

    ns = batches(run, n)
    for h in armed:
        h.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    return ns


def noop():
    return None


def echo(data):
    return data


def bench_to_thread(loop, n):
    async def body():
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await asyncio.to_thread(noop)
            samples.append(time.perf_counter_ns() - t0)
        return samples

    return loop.run_until_complete(body())


def bench_process(loop, n, size):
    data = b"x" * size

    async def body(pool):
        await loop.run_in_executor(pool, echo, data)  # start the worker
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await loop.run_in_executor(pool, echo, data)
            samples.append(time.perf_counter_ns() - t0)
        return samples

    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        return loop.run_until_complete(body(pool))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--loops", default="asyncio,uvloop")
    args = ap.parse_args()
    n = 20_000 if args.quick else 100_000
    m = 2_000 if args.quick else 5_000
    live = 1_000_000
    for name in args.loops.split(","):
        if name == "uvloop":
            try:
                import uvloop
            except ImportError:
                continue
            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        emit(name, "call_soon", batches(lambda k: bench_call_soon(loop, k), n))
        emit(name, "create_task_await", batches(lambda k: bench_create_task(loop, k), n))
        emit(name, "call_later_cancel_1M", bench_call_later_cancel(loop, n, live))
        s = bench_to_thread(loop, m)
        emit(name, "to_thread", statistics.mean(s), s)
        for size, label in ((64, "64B"), (65536, "64KiB")):
            s = bench_process(loop, m, size)
            emit(name, "process_" + label, statistics.mean(s), s)
        loop.close()


if __name__ == "__main__":
    main()
