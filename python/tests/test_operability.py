"""loop.metrics(), slow-callback naming and `python -m eddyloop`."""

import asyncio
import logging
import os
import subprocess
import sys
import time
import unittest

import eddyloop
from support import LoopTest


class MetricsTest(LoopTest):
    def test_metrics_move_as_work_is_done(self):
        before = self.loop.metrics()

        async def main():
            for _ in range(10):
                await asyncio.sleep(0)
            await asyncio.sleep(0.01)

        self.run_async(main())
        after = self.loop.metrics()
        self.assertGreater(after["callbacks"], before["callbacks"] + 10)
        self.assertGreater(after["iterations"], before["iterations"])
        self.assertGreaterEqual(after["blocking_waits"], before["blocking_waits"] + 1)
        self.assertGreater(after["idle_time"], before["idle_time"])
        self.assertGreater(after["busy_time"], 0)
        self.assertTrue(0 < after["utilization"] < 1)
        for key in ("live_tasks", "ready_depth", "in_flight_io", "armed_timers", "ops_submitted",
                    "in_flight"):
            self.assertIn(key, after)

    def test_waits_in_flight_are_counted_by_kind(self):
        import socket

        pairs = [socket.socketpair() for _ in range(2)]
        for a, b in pairs:
            a.setblocking(False)
            b.setblocking(False)
        seen = {}

        async def main():
            seen["before"] = self.loop.metrics()["in_flight"]
            recvs = [asyncio.ensure_future(self.loop.sock_recv(a, 1)) for a, _ in pairs]
            for _ in range(5):
                await asyncio.sleep(0)
            m = self.loop.metrics()
            seen["during"], seen["total"] = m["in_flight"], m["in_flight_io"]
            for _, b in pairs:
                b.send(b"x")
            self.assertEqual(await asyncio.gather(*recvs), [b"x", b"x"])
            seen["after"] = self.loop.metrics()["in_flight"]

        try:
            self.run_async(main())
        finally:
            for a, b in pairs:
                a.close()
                b.close()
        # sock_recv waits for readability with a poll when the first try finds nothing.
        before = seen["before"].get("poll", 0)
        self.assertEqual(seen["during"].get("poll", 0), before + 2, seen)
        self.assertEqual(seen["after"].get("poll", 0), before, seen)
        self.assertEqual(sum(seen["during"].values()), seen["total"], seen)

    def test_metrics_after_close_raise(self):
        self.loop.close()
        with self.assertRaises(RuntimeError):
            self.loop.metrics()


class SlowCallbackTest(LoopTest):
    def test_a_slow_task_step_is_named_and_a_fast_one_is_not(self):
        self.loop.set_slow_callback(0.05)

        async def slow_step():
            await asyncio.sleep(0)
            time.sleep(0.08)  # blocks the loop: one slow step

        async def fast():
            for _ in range(20):
                await asyncio.sleep(0)

        with self.assertLogs("asyncio", level=logging.WARNING) as logs:
            self.run_async(asyncio.gather(slow_step(), fast()))
        slow = [r for r in logs.output if "took" in r]
        self.assertEqual(len(slow), 1, logs.output)
        self.assertIn("slow_step", slow[0])
        self.assertIn("Executing", slow[0])

    def test_a_slow_plain_callback_is_named(self):
        self.loop.set_slow_callback(0.02)

        def blocking_callback():
            time.sleep(0.04)

        with self.assertLogs("asyncio", level=logging.WARNING) as logs:
            self.loop.call_soon(blocking_callback)
            self.run_async(asyncio.sleep(0.01))
        self.assertTrue(any("blocking_callback" in r for r in logs.output), logs.output)

    def test_bad_thresholds_are_refused(self):
        with self.assertRaises(ValueError):
            self.loop.set_slow_callback(-1)
        with self.assertRaises(ValueError):
            eddyloop.install(slow_callback_ms=-5)
        asyncio.set_event_loop_policy(None)


class MainTest(unittest.TestCase):
    def test_python_m_eddyloop_prints_version_backend_and_features(self):
        out = subprocess.run([sys.executable, "-m", "eddyloop"], capture_output=True, text=True,
                             env=dict(os.environ), timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"eddyloop {eddyloop.__version__}", out.stdout)
        self.assertIn("backend: ", out.stdout)
        self.assertIn("io_uring: ", out.stdout)
        self.assertIn("epoll: ", out.stdout)
        self.assertIn("libuv: ", out.stdout)
        bad = subprocess.run([sys.executable, "-m", "eddyloop", "--nope"], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(bad.returncode, 2)


if __name__ == "__main__":
    unittest.main()
