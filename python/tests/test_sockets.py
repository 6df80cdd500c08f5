"""sock_* coroutines, add_reader/add_writer and name resolution on the loop."""

import asyncio
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
