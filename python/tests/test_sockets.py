"""sock_* coroutines, add_reader/add_writer and name resolution on the loop."""

import asyncio
import os
import socket
import unittest

from support import LoopTest


class SockTest(LoopTest):
    def listener(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        s.setblocking(False)
        self.addCleanup(s.close)
        return s

    def test_sock_accept_connect_recv_sendall(self):
        async def main():
            lsock = self.listener()
            c = socket.socket()
            c.setblocking(False)
            self.addCleanup(c.close)
            accept = self.loop.create_task(self.loop.sock_accept(lsock))
            await self.loop.sock_connect(c, lsock.getsockname())
            conn, addr = await accept
            self.addCleanup(conn.close)
            self.assertEqual(addr, c.getsockname())
            self.assertEqual(conn.gettimeout(), 0)
            big = bytes(range(256)) * 8192  # 2 MiB: sendall must wait for room
            send = self.loop.create_task(self.loop.sock_sendall(c, big))
            got = bytearray()
            while len(got) < len(big):
                chunk = await self.loop.sock_recv(conn, 65536)
                self.assertTrue(chunk)
                got += chunk
            await send
            self.assertEqual(bytes(got), big)
            buf = bytearray(10)
            await self.loop.sock_sendall(conn, b"into")
            n = await self.loop.sock_recv_into(c, buf)
            self.assertEqual(buf[:n], b"into")
            c.shutdown(socket.SHUT_WR)
            self.assertEqual(await self.loop.sock_recv(conn, 10), b"")

        self.run_async(main())

    def test_sock_calls_on_a_blocking_socket_raise_in_debug_mode(self):
        # asyncio's check, made only in debug mode (a blocking socket's calls would
        # block the loop); CPython's test_sock_client_ops asserts it.
        async def main():
            a, b = socket.socketpair()
            self.addCleanup(a.close)
            self.addCleanup(b.close)
            a.setblocking(True)
            self.loop.set_debug(True)
            for call in (lambda: self.loop.sock_recv(a, 10), lambda: self.loop.sock_recv_into(a, bytearray(4)),
                         lambda: self.loop.sock_sendall(a, b"x"), lambda: self.loop.sock_accept(a),
                         lambda: self.loop.sock_connect(a, "nowhere")):
                with self.assertRaisesRegex(ValueError, "the socket must be non-blocking"):
                    await call()
            self.loop.set_debug(False)
            b.setblocking(False)
            await self.loop.sock_sendall(b, b"ok")  # without debug: not checked, as asyncio
            self.assertEqual(a.recv(2), b"ok")

        self.run_async(main())

    def test_sock_connect_refused(self):
        async def main():
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            addr = s.getsockname()
            s.close()
            c = socket.socket()
            c.setblocking(False)
            self.addCleanup(c.close)
            with self.assertRaises(ConnectionRefusedError):
                await self.loop.sock_connect(c, addr)

        self.run_async(main())

    def test_sock_recv_cancel_leaves_no_watch(self):
        async def main():
            a, b = socket.socketpair()
            self.addCleanup(a.close)
            self.addCleanup(b.close)
            a.setblocking(False)
            base = self.loop._core.stats()["live_tasks"]
            t = self.loop.create_task(self.loop.sock_recv(a, 10))
            await asyncio.sleep(0.01)
            self.assertEqual(self.loop._core.stats()["live_tasks"], base + 1)  # eddy's wait
            t.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await t
            for _ in range(100):  # the cancelled wait ends once the backend confirms
                if self.loop._core.stats()["live_tasks"] == base:
                    break
                await asyncio.sleep(0.001)
            self.assertEqual(self.loop._core.stats()["live_tasks"], base)
            b.send(b"later")
            self.assertEqual(await self.loop.sock_recv(a, 10), b"later")

        self.run_async(main())

    def _pair_on(self, number):
        """A non-blocking socketpair whose first socket has fd `number` (free)."""
        a, b = socket.socketpair()
        if a.fileno() != number:
            os.dup2(a.fileno(), number)
            a.close()
            a = socket.socket(fileno=number)
        a.setblocking(False)
        return a, b

    def test_sock_recv_after_python_closed_and_reused_the_number(self):
        # Python closes its sockets without telling the loop, and the next socket
        # often gets the same number: each wait must watch the file the number
        # names now (epoll: the old file's registration went with it).
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            number = a.fileno()
            for round in range(5):
                t = self.loop.create_task(self.loop.sock_recv(a, 10))
                await asyncio.sleep(0.005)  # the wait is armed
                b.send(b"r%d" % round)
                self.assertEqual(await asyncio.wait_for(t, 5), b"r%d" % round)
                a.close()
                b.close()
                a, b = self._pair_on(number)
                self.assertEqual(a.fileno(), number)
            a.close()
            b.close()

        self.run_async(main())

    def test_sock_recv_ignores_an_old_file_kept_alive_under_a_dup(self):
        # The old file lives on under a dup (a child, or socket.dup()), so its
        # kernel registration under the number outlives Python's close: its
        # events must not end a wait on the new file, and the new file's must.
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            number = a.fileno()
            b.send(b"x")
            self.assertEqual(await self.loop.sock_recv(a, 10), b"x")
            t = self.loop.create_task(self.loop.sock_recv(a, 10))
            await asyncio.sleep(0.005)
            b.send(b"y")
            self.assertEqual(await asyncio.wait_for(t, 5), b"y")
            keep = os.dup(number)  # the old file stays open
            self.addCleanup(os.close, keep)
            a.close()
            a2, b2 = self._pair_on(number)
            self.addCleanup(a2.close)
            self.addCleanup(b2.close)
            t = self.loop.create_task(self.loop.sock_recv(a2, 10))
            await asyncio.sleep(0.005)
            b.send(b"old")  # readable edge on the old file, same number
            await asyncio.sleep(0.02)
            self.assertFalse(t.done())
            b2.send(b"new")
            self.assertEqual(await asyncio.wait_for(t, 5), b"new")
            self.assertEqual(os.read(keep, 10), b"old")  # still on the old file
            b.close()

        self.run_async(main())

    def test_sock_recv_finds_data_that_came_between_waits(self):
        # The same file waited on again after data arrived while nobody waited:
        # the wait ends at once (epoll: the MOD that re-targets the watch reports
        # the state now), on a stream that always has data ready as on one that
        # never does.
        async def main():
            a, b = socket.socketpair()
            self.addCleanup(a.close)
            self.addCleanup(b.close)
            a.setblocking(False)
            for i in range(200):
                if i % 2:
                    b.send(b"%03d" % i)
                    await asyncio.sleep(0)
                else:
                    self.loop.call_later(0.001, b.send, b"%03d" % i)
                self.assertEqual(await asyncio.wait_for(self.loop.sock_recv(a, 3), 5), b"%03d" % i)

        self.run_async(main())

    def test_udp_sendto_recvfrom(self):
        async def main():
            a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for s in (a, b):
                s.bind(("127.0.0.1", 0))
                s.setblocking(False)
                self.addCleanup(s.close)
            recv = self.loop.create_task(self.loop.sock_recvfrom(b, 100))
            await asyncio.sleep(0)
            await self.loop.sock_sendto(a, b"dgram", b.getsockname())
            data, addr = await recv
            self.assertEqual((data, addr), (b"dgram", a.getsockname()))

        self.run_async(main())

    def test_add_reader_add_writer_and_removal(self):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        a.setblocking(False)
        got = []

        def on_readable():
            got.append(a.recv(100))
            if b"stop" in got[-1]:
                self.assertTrue(self.loop.remove_reader(a))
                self.loop.stop()

        self.loop.add_reader(a, on_readable)
        writes = []

        def on_writable():
            writes.append(1)
            self.assertTrue(self.loop.remove_writer(b.fileno()))
            b.send(b"one")
            self.loop.call_later(0.01, b.send, b"stop")

        self.loop.add_writer(b.fileno(), on_writable)
        self.loop.run_forever()
        self.assertEqual(writes, [1])
        self.assertEqual(b"".join(got), b"onestop")
        self.assertFalse(self.loop.remove_reader(a))
        self.assertFalse(self.loop.remove_writer(b))
        with self.assertRaises(ValueError):
            self.loop.add_reader(-1, print)

    def test_getaddrinfo_and_getnameinfo_run_off_the_loop(self):
        async def main():
            infos = await self.loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
            self.assertTrue(any(i[4][0] in ("127.0.0.1", "::1") for i in infos))
            host, port = await self.loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
            self.assertEqual((host, port), ("127.0.0.1", "80"))

        self.run_async(main())

    def test_sendfile_falls_back_to_copy(self):
        import tempfile

        async def main():
            data = b"sendfile " * 10000
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.seek(0)
                received = bytearray()
                done = self.loop.create_future()

                class Sink(asyncio.Protocol):
                    def data_received(self, d):
                        received.extend(d)

                    def connection_lost(self, exc):
                        done.set_result(None)

                server = await self.loop.create_server(Sink, "127.0.0.1", 0)
                port = server.sockets[0].getsockname()[1]
                tr, _ = await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
                n = await self.loop.sendfile(tr, f)
                self.assertEqual(n, len(data))
                tr.close()
                await done
                self.assertEqual(bytes(received), data)
                server.close()
                await server.wait_closed()

        self.run_async(main())


if __name__ == "__main__":
    unittest.main()
