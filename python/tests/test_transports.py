"""Stream transports and servers, written the way asyncio's test_events
exercises a loop: protocols on both ends, flow control, half-close, errors."""

import asyncio
import os
import socket
import sys
import tempfile
import unittest

from support import LoopTest


class Recorder(asyncio.Protocol):
    """Records every protocol event; `done` resolves on connection_lost."""

    def __init__(self, loop, echo=False):
        self.loop = loop
        self.echo = echo
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.made = loop.create_future()
        self.done = loop.create_future()
        self.got_eof = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        self.made.set_result(transport)

    def data_received(self, data):
        self.data += data
        if self.echo:
            self.transport.write(data)

    def eof_received(self):
        self.events.append("eof")
        self.got_eof.set_result(None)

    def pause_writing(self):
        self.events.append("pause")

    def resume_writing(self):
        self.events.append("resume")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.done.set_result(exc)


class TransportTest(LoopTest):
    async def pair(self, **server_kw):
        """A server and one connected client: (server, server protocol, client protocol)."""
        sprotos = []

        def factory():
            p = Recorder(self.loop, **server_kw)
            sprotos.append(p)
            return p

        server = await self.loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, cproto = await self.loop.create_connection(lambda: Recorder(self.loop), "127.0.0.1", port)
        while not sprotos:
            await asyncio.sleep(0.001)
        await sprotos[0].made
        return server, sprotos[0], cproto

    def test_echo_and_extra_info(self):
        async def main():
            server, sp, cp = await self.pair(echo=True)
            ct = cp.transport
            ct.write(b"hello ")
            ct.writelines([b"wor", bytearray(b"ld"), memoryview(b"!")])
            while len(cp.data) < 12:
                await asyncio.sleep(0.001)
            self.assertEqual(bytes(cp.data), b"hello world!")
            self.assertEqual(ct.get_extra_info("peername"), sp.transport.get_extra_info("sockname"))
            self.assertEqual(ct.get_extra_info("sockname"), sp.transport.get_extra_info("peername"))
            self.assertEqual(ct.get_extra_info("socket").getpeername(), ct.get_extra_info("peername"))
            self.assertIsNone(ct.get_extra_info("nope"))
            self.assertEqual(ct.get_extra_info("nope", 5), 5)
            self.assertIs(ct.get_protocol(), cp)
            with self.assertRaisesRegex(TypeError, "bytes-like object"):
                ct.write("text")
            ct.close()
            self.assertTrue(ct.is_closing())
            self.assertIsNone(await cp.done)
            self.assertIsNone(await sp.done)
            self.assertIn("eof", sp.events)
            server.close()
            await server.wait_closed()
            self.assertEqual(cp.events, ["made", ("lost", None)])

        self.run_async(main())

    def test_transports_are_asyncio_transports(self):
        # As asyncio's own: isinstance holds for Transport and the classes it
        # derives from (CPython's test_events checks it); the type cannot be made
        # from Python, and BaseTransport's unused `_extra` slot is its own field.
        async def main():
            server, sp, cp = await self.pair(echo=True)
            for tr in (cp.transport, sp.transport):
                for cls in (asyncio.Transport, asyncio.ReadTransport, asyncio.WriteTransport,
                            asyncio.BaseTransport):
                    self.assertIsInstance(tr, cls)
                self.assertNotIsInstance(tr, asyncio.DatagramTransport)
            with self.assertRaises(TypeError):
                type(cp.transport)()
            ct = cp.transport
            with self.assertRaises(AttributeError):
                ct._extra
            ct._extra = {"kept": object()}  # freed with the transport; get_extra_info unaffected
            self.assertEqual(ct.get_extra_info("peername"), sp.transport.get_extra_info("sockname"))
            ct.write(b"still works")
            while len(cp.data) < 11:
                await asyncio.sleep(0.001)
            ct.close()
            await cp.done
            await sp.done
            server.close()
            await server.wait_closed()

        self.run_async(main())

    def test_watching_a_transports_fd_is_refused_as_asyncio(self):
        # asyncio's selector loop refuses add_reader/add_writer/remove_* on a fd a
        # stream transport uses (CPython's test_add_reader_or_writer_transport_fd);
        # once the transport is closing they are allowed again.
        async def main():
            server, sp, cp = await self.pair(echo=True)
            for tr in (cp.transport, sp.transport):  # connected here, and accepted by the server
                sock = tr.get_extra_info("socket")
                for call in (lambda: self.loop.add_reader(sock, lambda: None),
                             lambda: self.loop.add_writer(sock.fileno(), lambda: None),
                             lambda: self.loop.remove_reader(sock), lambda: self.loop.remove_writer(sock)):
                    with self.assertRaisesRegex(RuntimeError, "is used by transport"):
                        call()
            with self.assertRaisesRegex(ValueError, "Invalid file object"):
                self.loop.add_reader(object(), lambda: None)
            fd = cp.transport.get_extra_info("socket").fileno()
            cp.transport.close()
            self.assertFalse(self.loop.remove_reader(fd))  # closing: asyncio lets it through
            await cp.done
            await sp.done
            server.close()
            await server.wait_closed()

        self.run_async(main())

    def test_write_eof_half_closes(self):
        async def main():
            server, sp, cp = await self.pair()
            sp.eof_received = lambda: True  # keep the server side open
            cp.transport.write(b"abc")
            self.assertTrue(cp.transport.can_write_eof())
            cp.transport.write_eof()
            with self.assertRaisesRegex(RuntimeError, "write_eof"):
                cp.transport.write(b"more")
            while len(sp.data) < 3:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.01)
            sp.transport.write(b"reply")
            sp.transport.close()
            await cp.done
            self.assertEqual(bytes(cp.data), b"reply")
            server.close()

        self.run_async(main())

    def test_flow_control_pauses_and_resumes_writing(self):
        async def main():
            server, sp, cp = await self.pair()
            sp.transport.pause_reading()
            self.assertFalse(sp.transport.is_reading())
            ct = cp.transport
            ct.set_write_buffer_limits(high=64 * 1024, low=1024)
            self.assertEqual(ct.get_write_buffer_limits(), (1024, 64 * 1024))
            with self.assertRaises(ValueError):
                ct.set_write_buffer_limits(high=1, low=2)
            chunk = b"x" * 65536
            sent = 0
            while "pause" not in cp.events and sent < 512 * 1024 * 1024:
                ct.write(chunk)
                sent += len(chunk)
                await asyncio.sleep(0)
            self.assertIn("pause", cp.events)
            self.assertGreater(ct.get_write_buffer_size(), 64 * 1024)
            got_while_paused = len(sp.data)
            await asyncio.sleep(0.02)
            self.assertEqual(len(sp.data), got_while_paused)
            sp.transport.resume_reading()
            self.assertTrue(sp.transport.is_reading())
            while len(sp.data) < sent:
                await asyncio.sleep(0.001)
            self.assertEqual(cp.events[-1], "resume")
            self.assertEqual(ct.get_write_buffer_size(), 0)
            ct.close()
            await sp.done
            server.close()

        self.run_async(main())

    def test_callbacks_queued_by_data_received_run_before_eof_received(self):
        # Data and FIN already waiting when the reader starts: as in asyncio, what
        # data_received queued runs before eof_received (aiohttp depends on it).
        async def main():
            order = []

            class P(Recorder):
                def data_received(self, data):
                    order.append(bytes(data))
                    self.loop.call_soon(order.append, "soon")

                def eof_received(self):
                    order.append("eof")

            a, b = socket.socketpair()
            b.sendall(b"request")
            b.shutdown(socket.SHUT_WR)
            proto = P(self.loop)
            waiter = self.loop.create_future()
            self.loop._make_socket_transport(a, proto, waiter)
            await waiter
            self.assertIsNone(await proto.done)
            self.assertEqual(order, [b"request", "soon", "eof"])
            b.close()

        self.run_async(main())

    @unittest.skipIf(os.environ.get("EDDYLOOP_SEND_NOW"), "EDDYLOOP_SEND_NOW sends every write at once")
    def test_writes_of_one_turn_go_out_in_one_send(self):
        # A SOCK_SEQPACKET pair keeps every send() a record of its own, so what
        # the peer's recv() returns shows how many system calls the transport made.
        async def main():
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            b.setblocking(False)
            proto = Recorder(self.loop)
            waiter = self.loop.create_future()
            tr = self.loop._make_socket_transport(a, proto, waiter)
            await waiter
            # aiohttp's way: headers, then body, in one callback.
            tr.write(b"HTTP/1.1 200 OK\r\n\r\n")
            tr.write(memoryview(b"Hello"))
            tr.writelines([b", ", bytearray(b"World!")])
            self.assertEqual(await self.loop.sock_recv(b, 4096), b"HTTP/1.1 200 OK\r\n\r\nHello, World!")
            # The next turn's writes are a send of their own.
            tr.write(b"next")
            self.assertEqual(await self.loop.sock_recv(b, 4096), b"next")
            # Above the high-water mark a write does not wait for the turn's end on
            # epoll (nor pause the protocol for bytes the kernel takes at once).
            tr.set_write_buffer_limits(high=8)
            tr.write(b"0123456789")
            if self.loop.backend == "epoll":
                self.assertEqual(tr.get_write_buffer_size(), 0)
                self.assertNotIn("pause", proto.events)
            self.assertEqual(await self.loop.sock_recv(b, 4096), b"0123456789")
            # close() and write_eof() right after a write wait for it.
            tr.write(b"bye")
            tr.write_eof()
            tr.close()
            self.assertEqual(await self.loop.sock_recv(b, 4096), b"bye")
            self.assertEqual(await self.loop.sock_recv(b, 4096), b"")
            self.assertIsNone(await proto.done)
            b.close()

        self.run_async(main())

    @unittest.skipIf(os.environ.get("EDDYLOOP_SEND_NOW"), "EDDYLOOP_SEND_NOW sends every write at once")
    def test_abort_right_after_write_drops_the_bytes(self):
        async def main():
            server, sp, cp = await self.pair()
            cp.transport.write(b"never sent")
            cp.transport.abort()  # before the turn's flush: the bytes go with the buffer
            self.assertIsNone(await cp.done)
            exc = await sp.done
            self.assertTrue(exc is None or isinstance(exc, ConnectionError))
            self.assertEqual(bytes(sp.data), b"")
            server.close()

        self.run_async(main())

    def test_abort_drops_buffer_and_reports_connection_lost(self):
        async def main():
            server, sp, cp = await self.pair()
            sp.transport.pause_reading()
            cp.transport.write(b"y" * (8 * 1024 * 1024))
            cp.transport.abort()
            self.assertIsNone(await cp.done)
            self.assertEqual(cp.transport.get_write_buffer_size(), 0)
            sp.transport.resume_reading()  # a paused reader sees the close only now, as in asyncio
            exc = await sp.done
            self.assertTrue(exc is None or isinstance(exc, ConnectionError))
            server.close()

        self.run_async(main())

    def test_protocol_error_goes_to_handler_and_closes(self):
        self.collect_errors()

        async def main():
            server, sp, cp = await self.pair()

            def bad(data):
                raise ValueError("protocol bug")

            sp.data_received = bad
            sp.transport.set_protocol(sp)
            cp.transport.write(b"z")
            exc = await sp.done
            self.assertIsInstance(exc, ValueError)
            await cp.done
            server.close()

        self.run_async(main())
        self.assertEqual(len(self.errors), 1)
        self.assertIn("data_received", self.errors[0]["message"])
        self.assertIsInstance(self.errors[0]["exception"], ValueError)

    def test_buffered_protocol(self):
        class Buffered(asyncio.BufferedProtocol):
            def __init__(self, loop):
                self.buf = bytearray(7)  # smaller than what arrives: several rounds
                self.got = bytearray()
                self.done = loop.create_future()

            def get_buffer(self, hint):
                return self.buf

            def buffer_updated(self, n):
                self.got += self.buf[:n]

            def connection_lost(self, exc):
                self.done.set_result(exc)

        async def main():
            protos = []
            server = await self.loop.create_server(lambda: protos.append(Buffered(self.loop)) or protos[-1],
                                                   "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"0123456789" * 10)
            await w.drain()
            w.close()
            await w.wait_closed()
            while not protos:
                await asyncio.sleep(0.001)
            await protos[0].done
            self.assertEqual(bytes(protos[0].got), b"0123456789" * 10)
            server.close()
            await server.wait_closed()

        self.run_async(main())

    def test_server_lifecycle(self):
        async def main():
            server = await self.loop.create_server(lambda: Recorder(self.loop, echo=True), "127.0.0.1", 0,
                                                   start_serving=False, backlog=10, reuse_port=True)
            self.assertFalse(server.is_serving())
            await server.start_serving()
            self.assertTrue(server.is_serving())
            port = server.sockets[0].getsockname()[1]
            forever = self.loop.create_task(server.serve_forever())
            _, cp = await self.loop.create_connection(lambda: Recorder(self.loop), "127.0.0.1", port)
            cp.transport.write(b"ping")
            while bytes(cp.data) != b"ping":
                await asyncio.sleep(0.001)
            forever.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await forever
            self.assertFalse(server.is_serving())
            await server.wait_closed()
            with self.assertRaises(ConnectionRefusedError):
                await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            cp.transport.close()
            await cp.done

        self.run_async(main())

    def test_connect_refused(self):
        async def main():
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            with self.assertRaises(ConnectionRefusedError):
                await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port)

        self.run_async(main())

    def test_connect_accepted_socket(self):
        async def main():
            lsock = socket.socket()
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(1)
            self.addCleanup(lsock.close)
            c = socket.create_connection(lsock.getsockname())
            self.addCleanup(c.close)
            conn, _ = lsock.accept()
            tr, proto = await self.loop.connect_accepted_socket(lambda: Recorder(self.loop, echo=True), conn)
            self.assertEqual(tr.get_extra_info("peername"), c.getsockname())
            c.sendall(b"accepted")
            got = b""
            while len(got) < 8:
                got += await self.loop.run_in_executor(None, c.recv, 100)
            self.assertEqual(got, b"accepted")
            tr.close()
            await proto.done
            self.assertEqual(conn.fileno(), -1)  # the transport owned and closed it

        self.run_async(main())

    def test_unix_server_and_connection(self):
        async def main():
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "sock")
                server = await self.loop.create_unix_server(lambda: Recorder(self.loop, echo=True), path)
                _, cp = await self.loop.create_unix_connection(lambda: Recorder(self.loop), path)
                cp.transport.write(b"unix")
                while bytes(cp.data) != b"unix":
                    await asyncio.sleep(0.001)
                cp.transport.close()
                await cp.done
                server.close()
                await server.wait_closed()

        self.run_async(main())

    def test_datagram_endpoint_echo(self):
        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(data.upper(), addr)

        class Client(asyncio.DatagramProtocol):
            def __init__(self, fut):
                self.fut = fut

            def datagram_received(self, data, addr):
                self.fut.set_result(data)

        async def main():
            st, _ = await self.loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
            addr = st.get_extra_info("sockname")
            fut = self.loop.create_future()
            ct, _ = await self.loop.create_datagram_endpoint(lambda: Client(fut), remote_addr=addr)
            ct.sendto(b"dgram")
            self.assertEqual(await fut, b"DGRAM")
            ct.close()
            st.close()
            await asyncio.sleep(0)

        self.run_async(main())

    def test_subprocess_pipeline(self):
        async def main():
            p1 = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            out, _ = await p1.communicate(b"pipeline")
            self.assertEqual(out, b"PIPELINE")
            self.assertEqual(p1.returncode, 0)
            p2 = await asyncio.create_subprocess_shell("echo $((6*7)); exit 4", stdout=asyncio.subprocess.PIPE)
            out, _ = await p2.communicate()
            self.assertEqual(out.strip(), b"42")
            self.assertEqual(p2.returncode, 4)

        self.run_async(main())


if __name__ == "__main__":
    unittest.main()
