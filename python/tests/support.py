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


def trace_of(make_loop, scenario):
    """Runs scenario(loop, trace) on a fresh loop from make_loop; returns the trace."""
    loop = make_loop()
    asyncio.set_event_loop(loop)
    trace = []
    try:
        scenario(loop, trace)
    finally:
        if not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)
    return trace


def trace_tests(name, scenarios):
    """A TestCase with one test_<scenario> per entry of `scenarios` (name ->
    scenario(loop, trace)): each runs on asyncio's own selector loop and on
    eddyloop, and the two traces must be equal and not empty (asyncio is the
    reference)."""
    def check(self, scenario):
        want = trace_of(asyncio.SelectorEventLoop, scenario)
        got = trace_of(eddyloop.new_event_loop, scenario)
        self.assertEqual(got, want)
        self.assertTrue(want)

    methods = {f"test_{n}": (lambda self, s=s: check(self, s)) for n, s in scenarios.items()}
    return type(name, (unittest.TestCase,), methods)

