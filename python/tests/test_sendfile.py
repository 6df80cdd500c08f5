"""loop.sendfile() on eddyloop's stream transports: the native path (os.sendfile
from a regular file, after the transport's queue is on the wire), the copy path
(files without a descriptor, pipes), flow control handed back to the
application's protocol, errors and cancellation."""

import asyncio
import io
import os
import socket
import tempfile
import threading
import unittest
from unittest import mock

from support import LoopTest

import eddyloop.sendfile as eddy_sendfile


class Sink(asyncio.Protocol):
    """The receiving end: keeps every byte; its transport can be paused."""

    def __init__(self, loop):
        self.data = bytearray()
        self.transport = None
        self.made = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, d):
        self.data += d

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class Sender(asyncio.Protocol):
    """The sending end's application protocol: counts what flow control told it."""

    def __init__(self):
        self.paused = False
        self.pauses = 0
        self.resumes = 0
        self.received = bytearray()
        self.lost = None

    def pause_writing(self):
        assert not self.paused, "pause_writing twice"
        self.paused = True
        self.pauses += 1

    def resume_writing(self):
        assert self.paused, "resume_writing without pause_writing"
        self.paused = False
        self.resumes += 1

    def data_received(self, d):
        self.received += d

    def connection_lost(self, exc):
        self.lost = exc


def payload(n):
    """n bytes whose pattern repeats every 251 bytes (a prime: no power-of-two chunk
    or offset lines up with it, so a dropped, repeated or reordered block shows)."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


class SendfileTest(LoopTest):
    async def pair(self):
        sinks = []

        def factory():
            sinks.append(Sink(self.loop))
            return sinks[-1]

        server = await self.loop.create_server(factory, "127.0.0.1", 0)
        self.addCleanup(server.close)
        port = server.sockets[0].getsockname()[1]
        proto = Sender()
        tr, _ = await self.loop.create_connection(lambda: proto, "127.0.0.1", port)
        while not sinks:
            await asyncio.sleep(0.001)
        await sinks[0].made
        return tr, proto, sinks[0], server

    def file_with(self, data):
        f = tempfile.TemporaryFile()
        self.addCleanup(f.close)
        f.write(data)
        f.seek(0)
        return f

    def count_native_calls(self):
        calls = []
        real = os.sendfile

        def counting(*args):
            calls.append(args[3])
            return real(*args)

        patcher = mock.patch.object(eddy_sendfile.os, "sendfile", counting)
        patcher.start()
        self.addCleanup(patcher.stop)
        return calls

    async def stalled_sendfile(self):
        """A sendfile of 32 MiB to a peer that has paused reading: once the socket
        buffers are full it waits for room. Returns the pair, the task, the data and the file."""
        data = payload(32 * 1024 * 1024)
        tr, proto, sink, server = await self.pair()
        sink.transport.pause_reading()
        file = self.file_with(data)
        send = self.loop.create_task(self.loop.sendfile(tr, file))
        await asyncio.sleep(0.05)
        self.assertFalse(send.done())
        return tr, proto, sink, server, send, data, file

    async def close_and_collect(self, tr, sink, server):
        tr.close()
        await sink.lost
        server.close()
        await server.wait_closed()
        return bytes(sink.data)

    def test_native_whole_file_and_a_slice_in_order_with_writes(self):
        data = payload(8 * 1024 * 1024 + 123)
        calls = self.count_native_calls()

        async def main():
            tr, proto, sink, server = await self.pair()
            f = self.file_with(data)
            head = b"H" * (3 * 1024 * 1024)  # queued in the transport when sendfile starts
            tr.write(head)
            n = await self.loop.sendfile(tr, f)
            self.assertEqual(n, len(data))
            self.assertEqual(f.tell(), len(data))
            tr.write(b"--")
            n = await self.loop.sendfile(tr, f, offset=1000, count=70000)
            self.assertEqual(n, 70000)
            self.assertEqual(f.tell(), 71000)
            tr.write(b"tail")
            self.assertIs(tr.get_protocol(), proto)
            self.assertEqual(tr.get_write_buffer_limits(), (16 * 1024, 64 * 1024))
            got = await self.close_and_collect(tr, sink, server)
            self.assertEqual(got, head + data + b"--" + data[1000:71000] + b"tail")
            self.assertEqual(proto.pauses, proto.resumes)

        self.run_async(main())
        self.assertTrue(calls, "the native path was not taken")

    def test_write_while_native_sendfile_runs_raises_as_asyncio(self):
        # asyncio's selector transport refuses write() while its native sendfile
        # runs (CPython's test_sendfile_prevents_bare_write): bytes written then
        # would land in the middle of the file's. After it, writes go on.
        async def main():
            tr, proto, sink, server, send, data, file = await self.stalled_sendfile()
            with self.assertRaisesRegex(RuntimeError, "sendfile is in progress"):
                tr.write(b"data")
            sink.transport.resume_reading()
            self.assertEqual(await send, len(data))
            tr.write(b"after")
            got = await self.close_and_collect(tr, sink, server)
            self.assertEqual(got, data + b"after")

        self.run_async(main())

    def test_count_past_the_end_stops_at_the_end(self):
        data = payload(100000)

        async def main():
            tr, _, sink, server = await self.pair()
            f = self.file_with(data)
            n = await self.loop.sendfile(tr, f, offset=99000, count=5000)
            self.assertEqual(n, 1000)
            self.assertEqual(await self.close_and_collect(tr, sink, server), data[99000:])

        self.run_async(main())

    def test_application_protocol_told_of_resume_during_sendfile(self):
        # The application's protocol is paused when sendfile starts; the queue
        # drains during it: the protocol must get resume_writing afterwards.
        for native in (True, False):
            with self.subTest(native=native):
                self.run_async(self.paused_then_resumed(native))

    async def paused_then_resumed(self, native):
        tr, proto, sink, server = await self.pair()
        sink.transport.pause_reading()
        tr.set_write_buffer_limits(high=64 * 1024)
        head = b"P" * (16 * 1024 * 1024)
        tr.write(head)
        self.assertTrue(proto.paused)
        data = payload(2 * 1024 * 1024)
        f = self.file_with(data) if native else io.BytesIO(data)
        send = self.loop.create_task(self.loop.sendfile(tr, f))
        await asyncio.sleep(0.05)
        self.assertFalse(send.done())
        sink.transport.resume_reading()
        self.assertEqual(await send, len(data))
        self.assertFalse(proto.paused, "resume_writing was not passed on")
        self.assertEqual((proto.pauses, proto.resumes), (1, 1))
        self.assertEqual(tr.get_write_buffer_limits(), (16 * 1024, 64 * 1024))
        self.assertEqual(await self.close_and_collect(tr, sink, server), head + data)

    def test_without_descriptor_copies_or_refuses(self):
        data = payload(300000)

        async def main():
            tr, _, sink, server = await self.pair()
            with self.assertRaises(asyncio.SendfileNotAvailableError):
                await self.loop.sendfile(tr, io.BytesIO(data), fallback=False)
            self.assertEqual(await self.loop.sendfile(tr, io.BytesIO(data), offset=10), len(data) - 10)
            self.assertEqual(await self.close_and_collect(tr, sink, server), data[10:])

        self.run_async(main())

    def test_pipe_takes_the_copy_path(self):
        data = payload(600000)
        r, w = os.pipe()
        reader = os.fdopen(r, "rb")
        self.addCleanup(reader.close)

        def feed():
            with os.fdopen(w, "wb") as out:
                out.write(data)

        async def main():
            tr, _, sink, server = await self.pair()
            with self.assertRaises(asyncio.SendfileNotAvailableError):
                await self.loop.sendfile(tr, reader, fallback=False)
            with self.assertRaises(ValueError):
                await self.loop.sendfile(tr, reader, offset=5)  # a pipe cannot seek
            t = threading.Thread(target=feed)
            t.start()
            try:
                self.assertEqual(await self.loop.sendfile(tr, reader), len(data))
            finally:
                t.join()
            self.assertEqual(await self.close_and_collect(tr, sink, server), data)

        self.run_async(main())

    def test_bad_arguments(self):
        async def main():
            tr, _, sink, server = await self.pair()
            f = self.file_with(b"x" * 10)
            with self.assertRaises(ValueError):
                await self.loop.sendfile(tr, f, offset=-1)
            with self.assertRaises(ValueError):
                await self.loop.sendfile(tr, f, count=0)
            with self.assertRaises(TypeError):
                await self.loop.sendfile(tr, f, count=1.5)
            with tempfile.TemporaryFile("w+") as text:
                with self.assertRaises(ValueError):
                    await self.loop.sendfile(tr, text)
            tr.close()
            with self.assertRaises(RuntimeError):
                await self.loop.sendfile(tr, f)
            await sink.lost

        self.run_async(main())

    def test_peer_gone_mid_file_raises(self):
        async def main():
            tr, proto, sink, server, send, data, file = await self.stalled_sendfile()
            sink.transport.abort()
            with self.assertRaises(ConnectionError):
                await send
            tr.abort()
            for _ in range(100):
                if proto.lost is not None or tr.is_closing():
                    break
                await asyncio.sleep(0.01)
            self.assertTrue(tr.is_closing())
            server.close()
            await server.wait_closed()

        self.run_async(main())

    def test_transport_aborted_while_sendfile_waits(self):
        # The socket is full and the peer not reading: sendfile waits for room.
        # abort() must end that wait (and the connection), not leave it hanging.
        async def main():
            tr, proto, sink, server, send, data, file = await self.stalled_sendfile()
            tr.abort()
            with self.assertRaises(ConnectionError):
                await asyncio.wait_for(send, 5)
            sink.transport.resume_reading()
            await asyncio.wait_for(sink.lost, 5)
            self.assertLess(len(sink.data), len(data))
            server.close()
            await server.wait_closed()

        self.run_async(main())

    def test_cancelled_mid_file_hands_the_transport_back(self):
        async def main():
            tr, proto, sink, server, send, data, file = await self.stalled_sendfile()
            send.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await send
            self.assertIs(tr.get_protocol(), proto)
            self.assertTrue(tr.is_reading())
            # The connection still carries data both ways.
            sink.transport.resume_reading()
            sink.transport.write(b"still here")
            for _ in range(200):
                if proto.received:
                    break
                await asyncio.sleep(0.01)
            self.assertEqual(bytes(proto.received), b"still here")
            sent = await self.close_and_collect(tr, sink, server)
            self.assertTrue(data.startswith(sent), "bytes out of order after cancel")
            # The file's position tells what was sent.
            self.assertEqual(file.tell(), len(sent))

        self.run_async(main())

    def test_sock_sendfile_native(self):

        data = payload(4 * 1024 * 1024 + 7)
        calls = self.count_native_calls()

        async def main():
            a, b = socket.socketpair()
            self.addCleanup(a.close)
            self.addCleanup(b.close)
            a.setblocking(False)
            b.setblocking(False)
            f = self.file_with(data)
            got = bytearray()

            async def drain():
                while len(got) < len(data) - 10:
                    chunk = await self.loop.sock_recv(b, 1 << 16)
                    self.assertTrue(chunk)
                    got.extend(chunk)

            reader = self.loop.create_task(drain())
            self.assertEqual(await self.loop.sock_sendfile(a, f, offset=10), len(data) - 10)
            await reader
            self.assertEqual(bytes(got), data[10:])
            self.assertEqual(f.tell(), len(data))

        self.run_async(main())
        self.assertTrue(calls, "sock_sendfile did not use os.sendfile")


if __name__ == "__main__":
    unittest.main()
