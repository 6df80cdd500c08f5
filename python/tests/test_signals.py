"""Signals on eddyloop as on asyncio's own loop: Ctrl-C (a real SIGINT from
another process) reaches Python on every backend whatever the loop is doing,
and SystemExit/KeyboardInterrupt from a signal handler leave run_forever, which
is how aiohttp's web.run_app stops on SIGTERM and SIGINT."""

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import unittest
import urllib.request
import weakref

import eddyloop

from support import LoopTest

# The child restores Python's own SIGINT handler: a test runner started in the
# background (no job control) hands its children SIGINT ignored, and Python then
# installs no handler at all.
PRELUDE = textwrap.dedent("""\
    import asyncio, os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import eddyloop
    def ready():
        print("ready", flush=True)
    def interrupted():
        print("interrupted", time.monotonic(), flush=True)
        sys.exit(3)
    """)


def run_child(test, body, sig=signal.SIGINT, limit=0.5):
    """Starts `body` in a child Python, sends it `sig` once it printed 'ready' and
    has had time to go idle, and checks it printed 'interrupted' within `limit`
    seconds of the signal (the child's own clock; CLOCK_MONOTONIC is system-wide)."""
    p = subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        test.assertEqual(p.stdout.readline().strip(), "ready")
        time.sleep(0.3)  # into the kernel wait
        sent = time.monotonic()
        p.send_signal(sig)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    words = out.split()
    test.assertEqual(words[:1], ["interrupted"], f"stdout {out!r} stderr {err[-2000:]!r}")
    test.assertEqual(p.returncode, 3, err[-2000:])
    test.assertLess(float(words[1]) - sent, limit)


class CtrlCTest(unittest.TestCase):
    def test_idle_loop_with_nothing_pending(self):
        run_child(self, """
            loop = eddyloop.new_event_loop()
            loop.call_soon(ready)
            try:
                loop.run_forever()
            except KeyboardInterrupt:
                interrupted()
            """)

    def test_loop_with_only_a_far_timer(self):
        run_child(self, """
            loop = eddyloop.new_event_loop()
            loop.call_later(60, print, "timer fired")
            loop.call_soon(ready)
            try:
                loop.run_forever()
            except KeyboardInterrupt:
                interrupted()
            """)

    def test_serve_forever(self):
        run_child(self, """
            async def main():
                server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
                ready()
                await server.serve_forever()
            loop = eddyloop.new_event_loop()
            try:
                loop.run_until_complete(main())
            except KeyboardInterrupt:
                interrupted()
            """)

    def test_inside_asyncio_run_waiting_on_an_event(self):
        # asyncio.Runner's own SIGINT handler cancels the main task; run() then
        # raises KeyboardInterrupt.
        run_child(self, """
            eddyloop.install()
            async def main():
                ready()
                await asyncio.Event().wait()
            try:
                asyncio.run(main())
            except KeyboardInterrupt:
                interrupted()
            """)

    def test_busy_loop(self):
        run_child(self, """
            async def spin():
                ready()
                while True:
                    await asyncio.sleep(0)
            try:
                eddyloop.new_event_loop().run_until_complete(spin())
            except KeyboardInterrupt:
                interrupted()
            """)


class SignalHandlerTest(LoopTest):
    def test_system_exit_and_keyboard_interrupt_leave_run_forever(self):
        loop = self.loop
        for exc in (SystemExit, KeyboardInterrupt):
            def handler():
                raise exc(7)
            after = []
            loop.add_signal_handler(signal.SIGUSR1, handler)
            loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
            loop.call_later(5, loop.stop)
            with self.assertRaises(exc):
                loop.run_forever()
            # The loop is usable again and nothing was lost.
            loop.call_soon(after.append, 1)
            loop.call_soon(loop.stop)
            loop.run_forever()
            self.assertEqual(after, [1])
            self.assertTrue(loop.remove_signal_handler(signal.SIGUSR1))

    def test_other_exceptions_go_to_the_handler_with_the_signal_handle(self):
        loop = self.loop
        self.collect_errors()

        def handler():
            loop.call_soon(loop.stop)
            raise ZeroDivisionError

        loop.add_signal_handler(signal.SIGUSR1, handler)
        loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
        loop.run_forever()
        loop.remove_signal_handler(signal.SIGUSR1)
        self.assertEqual(len(self.errors), 1)
        ctx = self.errors[0]
        self.assertIsInstance(ctx["exception"], ZeroDivisionError)
        self.assertIn("Exception in callback", ctx["message"])
        self.assertIn("handler", ctx["message"])
        self.assertIsInstance(ctx["handle"], asyncio.Handle)

    def test_ctrl_c_wakeup_fd_is_given_back_after_run(self):
        # The loop takes the wakeup fd only while it runs (main thread).
        r, w = socket.socketpair()
        w.setblocking(False)
        self.addCleanup(r.close)
        self.addCleanup(w.close)
        old = signal.set_wakeup_fd(w.fileno())
        try:
            seen = []
            self.loop.call_soon(lambda: seen.append(signal.set_wakeup_fd(-1)))
            self.loop.call_soon(self.loop.stop)
            self.loop.run_forever()
            self.assertNotEqual(seen[0], w.fileno())
            self.assertEqual(signal.set_wakeup_fd(-1), w.fileno())
        finally:
            signal.set_wakeup_fd(old)

    def test_a_loop_on_another_thread_leaves_the_wakeup_fd_alone(self):
        r, w = socket.socketpair()
        w.setblocking(False)
        self.addCleanup(r.close)
        self.addCleanup(w.close)
        old = signal.set_wakeup_fd(w.fileno())
        try:
            during = []

            def other():
                loop = eddyloop.new_event_loop()
                try:
                    loop.run_until_complete(asyncio.sleep(0.05))
                finally:
                    loop.close()
            th = threading.Thread(target=other)
            th.start()
            while th.is_alive():
                during.append(signal.set_wakeup_fd(w.fileno()))
                time.sleep(0.005)
            th.join()
            self.assertEqual(set(during), {w.fileno()})
            self.assertEqual(signal.set_wakeup_fd(-1), w.fileno())
        finally:
            signal.set_wakeup_fd(old)


class WakeupSocketTest(unittest.TestCase):
    def test_an_unclosed_loop_is_still_collected_with_its_fds(self):
        # The wakeup socket's watch holds the loop weakly: dropping a loop that
        # ran and was never closed frees it, as asyncio's loops are freed.
        first = eddyloop.new_event_loop()  # a backend's process-wide fds, once
        first.close()
        fds = len(os.listdir("/proc/self/fd"))
        loop = eddyloop.new_event_loop()
        loop.run_until_complete(asyncio.sleep(0.01))
        ref = weakref.ref(loop)
        del loop
        gc.collect()
        self.assertIsNone(ref())
        self.assertEqual(len(os.listdir("/proc/self/fd")), fds)


@unittest.skipUnless(__import__("importlib").util.find_spec("aiohttp"), "aiohttp is not installed")
class RunAppTest(unittest.TestCase):
    """aiohttp's web.run_app stops on SIGTERM (GracefulExit, a SystemExit, from
    its signal handler) and SIGINT, runs the app's cleanup and returns."""

    APP = textwrap.dedent("""\
        import asyncio, signal, socket, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import eddyloop
        from aiohttp import web
        eddyloop.install()
        async def hello(request):
            return web.Response(text="hello")
        async def cleanup(app):
            print("cleanup", flush=True)
        app = web.Application()
        app.router.add_get("/", hello)
        app.on_cleanup.append(cleanup)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1], flush=True)
        web.run_app(app, sock=sock, print=None)
        print("returned", type(asyncio.get_event_loop_policy()).__module__, flush=True)
        """)

    def stop_with(self, sig):
        p = subprocess.Popen([sys.executable, "-c", self.APP], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        try:
            port = int(p.stdout.readline())
            body = None
            for _ in range(100):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                        body = (r.status, r.read())
                    break
                except OSError:
                    time.sleep(0.05)
            self.assertEqual(body, (200, b"hello"))
            p.send_signal(sig)
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err[-2000:])
        self.assertEqual(out.split(), ["cleanup", "returned", "eddyloop"], err[-2000:])

    def test_sigterm(self):
        self.stop_with(signal.SIGTERM)

    def test_sigint(self):
        self.stop_with(signal.SIGINT)


if __name__ == "__main__":
    unittest.main()
