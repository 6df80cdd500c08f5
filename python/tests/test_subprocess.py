"""Subprocesses on eddyloop: asyncio's subprocess transport with each child's exit
seen through a pidfd on the loop (no child watcher, no thread per child)."""

import asyncio
import gc
import os
import signal
import sys
import threading
import unittest
import warnings

from support import LoopTest, open_fds

import eddyloop


class SubprocessTest(LoopTest):
    def test_many_children_at_once_with_their_exit_codes_and_no_threads(self):
        async def main():
            threads = threading.active_count()
            procs = [await asyncio.create_subprocess_exec("/bin/sh", "-c", f"exit {i % 7}")
                     for i in range(60)]
            # asyncio's default watcher in 3.11 would be running a thread per child now.
            self.assertEqual(threading.active_count(), threads)
            codes = await asyncio.gather(*(p.wait() for p in procs))
            self.assertEqual(codes, [i % 7 for i in range(60)])

        fds = open_fds()
        self.run_async(main())
        self.assertEqual(open_fds(), fds)

    def test_output_and_a_signal_death(self):
        async def main():
            p = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            out, _ = await p.communicate(b"pidfd")
            self.assertEqual((out, p.returncode), (b"PIDFD", 0))
            p = await asyncio.create_subprocess_exec("sleep", "30")
            p.send_signal(signal.SIGKILL)
            self.assertEqual(await asyncio.wait_for(p.wait(), 10), -signal.SIGKILL)

        self.run_async(main())

    def test_a_loop_in_another_thread_runs_children(self):
        result = []

        def thread_main():
            loop = eddyloop.new_event_loop()
            try:
                async def run():
                    p = await asyncio.create_subprocess_exec("/bin/sh", "-c", "echo hi; exit 3",
                                                             stdout=asyncio.subprocess.PIPE)
                    out, _ = await p.communicate()
                    return out, p.returncode

                result.append(loop.run_until_complete(asyncio.wait_for(run(), 20)))
            finally:
                loop.close()

        t = threading.Thread(target=thread_main)
        t.start()
        t.join(30)
        self.assertEqual(result, [(b"hi\n", 3)])

    def test_closing_the_loop_with_a_child_running_warns_and_leaks_no_fd(self):
        fds = open_fds()
        loop = eddyloop.new_event_loop()

        async def start():
            return await asyncio.create_subprocess_exec("sleep", "30")

        p = loop.run_until_complete(start())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop.close()
        self.assertTrue(any(issubclass(w.category, ResourceWarning) and "still running" in str(w.message)
                            for w in caught), [str(w.message) for w in caught])
        os.kill(p.pid, signal.SIGKILL)
        os.waitpid(p.pid, 0)
        with warnings.catch_warnings():
            # The transport never saw its child exit, so it says so when collected.
            warnings.simplefilter("ignore", ResourceWarning)
            del p
            gc.collect()
        self.assertEqual(open_fds(), fds)


if __name__ == "__main__":
    unittest.main()
