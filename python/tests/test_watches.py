"""add_reader/add_writer as asyncio promises them: a removed watch never runs
again whatever the kernel still had in flight for it, a new watch on an fd with
data already waiting fires, and slow readers of fast pipes get every byte."""

import asyncio
import os
import socket
import sys
import time
import unittest

from support import LoopTest

CYCLES = 500


class WatchTest(LoopTest):
    def pair(self):
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        self.addCleanup(r.close)
        self.addCleanup(w.close)
        return r, w

    def test_removed_reader_never_runs_again_500_cycles(self):
        # add_reader(A); A reads once; a turn later remove_reader then at once
        # add_reader(B); then data arrives: B must take it, A must not run.
        loop = self.loop
        r, w = self.pair()
        count = {"A": 0, "B": 0, "empty": 0}

        def reader(name):
            def cb():
                count[name] += 1
                try:
                    r.recv(1)
                except BlockingIOError:
                    count["empty"] += 1
            return cb

        async def until(n):
            while count["A"] + count["B"] < n:
                await asyncio.sleep(0)

        async def main():
            for i in range(CYCLES):
                loop.add_reader(r, reader("A"))
                w.send(b"a")
                await until(2 * i + 1)
                await asyncio.sleep(0)
                self.assertTrue(loop.remove_reader(r))
                loop.add_reader(r, reader("B"))
                w.send(b"b")
                await until(2 * i + 2)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                self.assertTrue(loop.remove_reader(r))

        self.run_async(main())
        self.assertEqual(count, {"A": CYCLES, "B": CYCLES, "empty": 0})

    def test_removed_writer_never_runs_again_500_cycles(self):
        # A writable socket is always ready: A removes itself and adds B in the
        # same callback, B removes itself. Exactly one call of each per cycle.
        loop = self.loop
        r, w = self.pair()
        count = {"A": 0, "B": 0}
        done = []

        def b():
            count["B"] += 1
            loop.remove_writer(w)
            done[-1].set_result(None)

        def a():
            count["A"] += 1
            loop.remove_writer(w)
            loop.add_writer(w, b)

        async def main():
            for _ in range(CYCLES):
                done.append(loop.create_future())
                loop.add_writer(w, a)
                await done[-1]
                for _ in range(3):
                    await asyncio.sleep(0)

        self.run_async(main())
        self.assertEqual(count, {"A": CYCLES, "B": CYCLES})

    def test_remove_reader_cancels_its_handle_and_replacing_cancels_the_old(self):
        loop = self.loop
        r, w = self.pair()
        loop.add_reader(r, lambda: None)
        old = loop._readers[r.fileno()]
        loop.add_reader(r, lambda: None)  # replaces: asyncio cancels the old handle
        self.assertIsNot(loop._readers[r.fileno()], old)
        self.assertTrue(loop.remove_reader(r))
        self.assertFalse(loop.remove_reader(r))

    def test_add_remove_add_with_data_already_waiting(self):
        # The data is there before any watch exists; the second watch (same turn,
        # then a turn later) must fire at once, the removed one never.
        loop = self.loop
        r, w = self.pair()
        w.send(b"x" * 10)
        got = []

        async def main():
            loop.add_reader(r, got.append, "A")
            loop.remove_reader(r)
            fut = loop.create_future()
            loop.add_reader(r, lambda: fut.done() or fut.set_result("B"))
            self.assertEqual(await fut, "B")
            loop.remove_reader(r)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            fut2 = loop.create_future()
            loop.add_reader(r, lambda: fut2.done() or fut2.set_result("C"))
            self.assertEqual(await asyncio.wait_for(fut2, 5), "C")
            loop.remove_reader(r)
            self.assertEqual(r.recv(100), b"x" * 10)

        self.run_async(main())
        self.assertEqual(got, [])

    def test_paused_and_resumed_reader_with_data_waiting(self):
        # What a pipe transport does past its high-water mark: remove_reader,
        # a few turns, add_reader while the peer's data waits (no new edge comes).
        loop = self.loop
        r, w = self.pair()
        total = 200_000
        w.setblocking(True)
        got = bytearray()

        async def main():
            writer = loop.run_in_executor(None, w.sendall, b"y" * total)
            fut = loop.create_future()

            def on_readable():
                got.extend(r.recv(4096))
                loop.remove_reader(r)
                if len(got) >= total:
                    fut.set_result(None)
                else:
                    loop.call_soon(loop.add_reader, r, on_readable)

            loop.add_reader(r, on_readable)
            await asyncio.wait_for(fut, 15)
            await writer

        self.run_async(main(), timeout=30)
        self.assertEqual(len(got), total)

    def test_sock_recv_data_arriving_between_spawn_and_first_poll(self):
        # The task's recv() finds nothing and starts a wait; the bytes are sent by
        # the callback queued right behind the task's step, so they are in the
        # socket before the wait's first poll reaches the backend.
        loop = self.loop
        r, w = self.pair()

        async def main():
            for i in range(50):
                t = loop.create_task(loop.sock_recv(r, 100))
                loop.call_soon(w.send, b"%d" % i)
                self.assertEqual(await asyncio.wait_for(t, 5), b"%d" % i)

        self.run_async(main())

    def test_subprocess_pipe_read_slowly_gets_every_byte(self):
        # A pipe transport pauses (remove_reader) past 2 x limit and resumes
        # (add_reader) with the pipe still full: no edge comes for what waits.
        size = 20_000_000

        async def main():
            p = await asyncio.create_subprocess_exec(
                "sh", "-c", f"head -c {size} /dev/zero", stdout=asyncio.subprocess.PIPE, limit=4096)
            n = 0
            reads = 0
            while True:
                chunk = await p.stdout.read(65536)
                if not chunk:
                    break
                n += len(chunk)
                reads += 1
                if reads % 50 == 0:
                    await asyncio.sleep(0.001)
            self.assertEqual(await p.wait(), 0)
            return n

        self.assertEqual(self.run_async(main(), timeout=60), size)


if __name__ == "__main__":
    unittest.main()
