"""Scheduling and running: what asyncio's own test_base_events checks of a loop."""

import asyncio
import contextvars
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import eddyloop
from support import LoopTest

var = contextvars.ContextVar("var", default="unset")


class SchedulingTest(LoopTest):
    def test_call_soon_runs_callbacks_in_order_with_args(self):
        out = []
        self.loop.call_soon(out.append, 1)
        self.loop.call_soon(out.extend, (2, 3))
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(out, [1, 2, 3])

    def test_cancelled_handle_does_not_run(self):
        out = []
        h = self.loop.call_soon(out.append, 1)
        self.assertFalse(h.cancelled())
        h.cancel()
        self.assertTrue(h.cancelled())
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(out, [])

    def test_call_soon_rejects_coroutines_and_non_callables(self):
        async def coro():
            pass
        c = coro()
        with self.assertRaises(TypeError):
            self.loop.call_soon(c)
        c.close()
        with self.assertRaises(TypeError):
            self.loop.call_soon(42)
        with self.assertRaises(TypeError):
            self.loop.call_later(0.1, None)

    def test_debug_mode_records_where_each_handle_was_made_and_checks_the_thread(self):
        # asyncio's debug mode: each handle's _source_traceback ends at the line
        # that scheduled it, the exception handler's context carries it, and
        # call_soon from another thread raises (CPython's test_handle_source_traceback).
        loop = self.loop
        self.assertIsNone(loop.call_soon(lambda: None)._source_traceback)
        loop.set_debug(True)
        here = sys._getframe()
        made = [(loop.call_soon(lambda: None), here.f_lineno),
                (loop.call_later(0, lambda: None), here.f_lineno),
                (loop.call_at(loop.time(), lambda: None), here.f_lineno),
                (loop.call_soon_threadsafe(lambda: None), here.f_lineno)]
        for h, line in made:
            self.assertEqual(h._source_traceback[-1][:3], (__file__, line, here.f_code.co_name))
        contexts = []
        loop.set_exception_handler(lambda l, ctx: contexts.append(ctx))

        def boom():
            raise ValueError("boom")

        loop.call_soon(boom)
        loop.run_until_complete(asyncio.sleep(0.01))
        self.assertEqual(len(contexts), 1)
        self.assertIsInstance(contexts[0]["exception"], ValueError)
        self.assertEqual(contexts[0]["source_traceback"][-1][2], sys._getframe().f_code.co_name)

        async def from_another_thread():
            def call():
                try:
                    loop.call_soon(lambda: None)
                except RuntimeError as e:
                    return str(e)
            return await loop.run_in_executor(None, call)

        self.assertIn("Non-thread-safe operation", loop.run_until_complete(from_another_thread()))
        loop.set_debug(False)
        self.assertIsNone(loop.call_soon(lambda: None)._source_traceback)

    def test_context_is_honoured(self):
        seen = []
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        self.loop.call_soon(lambda: seen.append(var.get()), context=ctx)
        var.set("at call_soon")
        self.loop.call_soon(lambda: seen.append(var.get()))
        var.set("later")
        self.loop.call_later(0.001, lambda: seen.append(var.get()))
        self.loop.call_later(0.01, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, ["in ctx", "at call_soon", "later"])

    def test_timers_fire_in_deadline_order_never_early(self):
        out = []
        start = self.loop.time()
        for d in (0.03, 0.01, 0.02):
            self.loop.call_later(d, lambda d=d: out.append((d, self.loop.time() - start)))
        h = self.loop.call_at(self.loop.time() + 0.015, out.append, "cancelled")
        self.assertAlmostEqual(h.when(), start + 0.015, delta=0.01)
        h.cancel()
        self.loop.call_later(0.04, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual([d for d, _ in out], [0.01, 0.02, 0.03])
        for d, elapsed in out:
            self.assertGreaterEqual(elapsed, d)

    def test_negative_delay_runs_soon(self):
        out = []
        self.loop.call_later(-5, out.append, 1)
        self.loop.call_later(0.001, self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(out, [1])

    def test_time_is_monotonic_clock(self):
        self.assertAlmostEqual(self.loop.time(), time.monotonic(), delta=0.5)

    def test_call_soon_threadsafe_wakes_a_sleeping_loop(self):
        out = []

        def poster():
            time.sleep(0.05)
            self.loop.call_soon_threadsafe(out.append, threading.get_ident())
            self.loop.call_soon_threadsafe(self.loop.stop)

        t = threading.Thread(target=poster)
        t.start()
        self.loop.run_forever()
        t.join()
        self.assertEqual(out, [t.ident])

    def test_stop_before_run_forever_runs_one_iteration(self):
        out = []
        self.loop.stop()
        self.loop.call_soon(out.append, 1)
        self.loop.run_forever()
        self.assertEqual(out, [1])
        self.assertFalse(self.loop.is_running())

    def test_is_running_and_close(self):
        seen = []
        self.loop.call_soon(lambda: seen.append(self.loop.is_running()))
        self.loop.call_soon(lambda: self.assertRaises(RuntimeError, self.loop.close))
        self.loop.call_soon(lambda: self.assertRaises(RuntimeError, self.loop.run_forever))
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(seen, [True])
        self.loop.close()
        self.assertTrue(self.loop.is_closed())
        self.loop.close()  # idempotent
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.call_soon(print)
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.call_later(1, print)
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.call_soon_threadsafe(print)
        with self.assertRaisesRegex(RuntimeError, "Event loop is closed"):
            self.loop.run_forever()

    def test_exception_in_callback_goes_to_handler_and_loop_continues(self):
        self.collect_errors()
        out = []

        def boom():
            raise ZeroDivisionError("x")

        h = self.loop.call_soon(boom)
        self.loop.call_soon(out.append, 1)
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()
        self.assertEqual(out, [1])
        self.assertEqual(len(self.errors), 1)
        self.assertIsInstance(self.errors[0]["exception"], ZeroDivisionError)
        self.assertIs(self.errors[0]["handle"], h)
        self.assertIn("Exception in callback", self.errors[0]["message"])

    def test_keyboard_interrupt_and_system_exit_propagate(self):
        for exc in (KeyboardInterrupt, SystemExit):
            def raiser():
                raise exc()
            out = []
            self.loop.call_soon(raiser)
            self.loop.call_later(0.05, out.append, "still scheduled")
            with self.assertRaises(exc):
                self.loop.run_forever()
            self.assertFalse(self.loop.is_running())
            self.loop.call_later(0.1, self.loop.stop)
            self.loop.run_forever()
            self.assertEqual(out, ["still scheduled"])

    def test_keyboard_interrupt_from_a_task_propagates(self):
        async def main():
            await asyncio.sleep(0)
            raise KeyboardInterrupt
        with self.assertRaises(KeyboardInterrupt):
            self.loop.run_until_complete(main())


class TaskTest(LoopTest):
    def test_run_until_complete_returns_and_raises(self):
        async def ok():
            await asyncio.sleep(0.001)
            return 7

        async def bad():
            await asyncio.sleep(0)
            raise ValueError("bad")

        self.assertEqual(self.loop.run_until_complete(ok()), 7)
        with self.assertRaisesRegex(ValueError, "bad"):
            self.loop.run_until_complete(bad())

    def test_create_future_and_task_use_asyncio_c_types(self):
        fut = self.loop.create_future()
        self.assertIs(type(fut), asyncio.Future)

        async def f():
            return var.get()

        ctx = contextvars.copy_context()
        ctx.run(var.set, "task ctx")
        t = self.loop.create_task(f(), name="named", context=ctx)
        self.assertEqual(t.get_name(), "named")
        self.assertIs(type(t), asyncio.Task)
        self.assertEqual(self.loop.run_until_complete(t), "task ctx")
        fut.cancel()

    def test_task_factory(self):
        made = []

        def factory(loop, coro, **kw):
            made.append(coro)
            return asyncio.Task(coro, loop=loop, **kw)

        self.loop.set_task_factory(factory)
        self.assertIs(self.loop.get_task_factory(), factory)

        async def f():
            return 1

        self.assertEqual(self.loop.run_until_complete(f()), 1)
        self.assertEqual(len(made), 1)

    def test_gather_sleep_and_wait_for_timeout(self):
        async def main():
            r = await asyncio.gather(*(asyncio.sleep(0.001 * i, i) for i in range(50)))
            with self.assertRaises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.sleep(10), 0.01)
            return r

        self.assertEqual(self.loop.run_until_complete(main()), list(range(50)))

    def test_run_in_executor_and_shutdown_default_executor(self):
        async def main():
            a = await self.loop.run_in_executor(None, sum, [1, 2, 3])
            b = await self.loop.run_in_executor(None, threading.get_ident)
            return a, b

        a, b = self.loop.run_until_complete(main())
        self.assertEqual(a, 6)
        self.assertNotEqual(b, threading.get_ident())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        with self.assertRaises(RuntimeError):
            self.loop.run_in_executor(None, print)

    def test_shutdown_asyncgens_finalizes_generators(self):
        closed = []

        async def agen():
            try:
                yield 1
                yield 2
            finally:
                closed.append(True)

        async def main():
            g = agen()
            await g.__anext__()
            return g

        g = self.loop.run_until_complete(main())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.assertEqual(closed, [True])
        del g

    def test_debug_mode(self):
        self.loop.set_debug(True)
        self.assertTrue(self.loop.get_debug())

        async def f():
            return 1

        self.assertEqual(self.loop.run_until_complete(f()), 1)

    def test_signal_handler_runs_on_the_loop(self):
        got = []

        def on_usr1(tag):
            got.append((tag, threading.get_ident()))
            self.loop.stop()

        self.loop.add_signal_handler(signal.SIGUSR1, on_usr1, "usr1")
        self.loop.call_later(0.02, os.kill, os.getpid(), signal.SIGUSR1)
        self.loop.run_forever()
        self.assertEqual(got, [("usr1", threading.get_ident())])
        self.assertTrue(self.loop.remove_signal_handler(signal.SIGUSR1))
        self.assertFalse(self.loop.remove_signal_handler(signal.SIGUSR1))
        with self.assertRaises(TypeError):
            self.loop.add_signal_handler(signal.SIGUSR1, asyncio.sleep)


class PolicyTest(unittest.TestCase):
    def test_policy_and_install_make_eddy_loops(self):
        old = asyncio.get_event_loop_policy()
        try:
            eddyloop.install()

            async def main():
                return type(asyncio.get_running_loop())

            self.assertIs(asyncio.run(main()), eddyloop.Loop)
            asyncio.set_event_loop_policy(eddyloop.EventLoopPolicy())
            self.assertIs(asyncio.run(main()), eddyloop.Loop)
        finally:
            asyncio.set_event_loop_policy(old)

    def test_unknown_backend_is_a_clear_error(self):
        with self.assertRaisesRegex(ValueError, "unknown eddy backend"):
            eddyloop.new_event_loop(backend="kqueue")

    def test_ctrl_c_interrupts_asyncio_run(self):
        code = (
            "import asyncio, eddyloop, sys\n"
            "eddyloop.install()\n"
            "async def main():\n"
            "    print('ready', flush=True)\n"
            "    await asyncio.sleep(30)\n"
            "try:\n"
            "    asyncio.run(main())\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted', flush=True)\n"
            "    sys.exit(3)\n")
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(p.stdout.readline().strip(), "ready")
            time.sleep(0.1)
            p.send_signal(signal.SIGINT)
            out, _ = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(out.strip(), "interrupted")
        self.assertEqual(p.returncode, 3)


if __name__ == "__main__":
    unittest.main()
