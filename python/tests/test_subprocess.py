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


    def test_a_closed_stdout_pipe_is_closed_once_the_loop_hands_back_control(self):
        # CPython's test_events.test_subprocess_close_client_stream, in the shape a
        # program stopping and starting the loop has: after stdout's transport is
        # closed and its connection_lost has run, the child's next write to stdout
        # fails with EPIPE, even though the loop is not running when it writes.
        # On io_uring the watch's dup of the pipe (and the poll holding its file)
        # lived on until the loop's next run, and the child wrote into the pipe.
        loop = self.loop
        child = ("import os\n"
                 "while True:\n"
                 "    buf = os.read(0, 1024)\n"
                 "    if not buf: break\n"
                 "    try: os.write(1, b'OUT:' + buf)\n"
                 "    except OSError as ex: os.write(2, b'ERR:' + type(ex).__name__.encode())\n")

        class Proto(asyncio.SubprocessProtocol):
            def __init__(self):
                self.data = {1: b"", 2: b""}
                self.got = {1: asyncio.Event(), 2: asyncio.Event()}
                self.lost = {1: loop.create_future()}

            def pipe_data_received(self, fd, data):
                self.data[fd] += data
                self.got[fd].set()

            def pipe_connection_lost(self, fd, exc):
                if fd in self.lost and not self.lost[fd].done():
                    self.lost[fd].set_result(exc)

        tr, proto = loop.run_until_complete(loop.subprocess_exec(Proto, sys.executable, "-c", child))
        stdin, stdout = tr.get_pipe_transport(0), tr.get_pipe_transport(1)
        stdin.write(b"test")
        self.run_async(proto.got[1].wait())
        self.assertEqual(proto.data[1], b"OUT:test")
        stdout.close()
        self.run_async(proto.lost[1])
        stdin.write(b"xxx")  # the loop is stopped: the child writes to stdout now
        self.run_async(proto.got[2].wait(), timeout=10)
        self.assertEqual(proto.data[2], b"ERR:BrokenPipeError")
        tr.close()
        self.run_async(tr._wait())

if __name__ == "__main__":
    unittest.main()
