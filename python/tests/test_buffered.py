"""BufferedProtocol on eddyloop's stream transport, against asyncio's selector
loop: each scenario runs on both and their traces must match. The transport
reads straight into the buffer get_buffer(-1) returns (asyncio's call), keeps
its errors (get_buffer raising, an empty buffer, buffer_updated raising), and
keeps every byte in order when set_protocol switches between buffered and plain
protocols mid-stream or pause_reading holds the reads."""

import asyncio
import hashlib
import os
import random
import socket
import threading
import unittest

from support import trace_tests

# A large transfer, scaled for the suite; EDDYLOOP_TEST_MIB=256 for a long run by hand.
TOTAL = int(os.environ.get("EDDYLOOP_TEST_MIB", "8")) << 20


def payload(n, seed):
    return random.Random(seed).randbytes(n)


def send_in_thread(sock, data, chunk=1 << 20):
    """Sends `data` from a thread (blocking), then half-closes."""
    def run():
        try:
            for i in range(0, len(data), chunk):
                sock.sendall(data[i:i + chunk])
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the reader went away: the scenario says what it saw
    t = threading.Thread(target=run)
    t.start()
    return t


class Sink(asyncio.BufferedProtocol):
    """Reads into one 256 KiB buffer; hashes what arrives."""

    def __init__(self, loop, trace, size=256 * 1024):
        self.trace = trace
        self.buf = bytearray(size)
        self.hash = hashlib.sha256()
        self.total = 0
        self.hints = set()
        self.done = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        self.hints.add(sizehint)
        return memoryview(self.buf)

    def buffer_updated(self, n):
        self.hash.update(self.buf[:n])
        self.total += n

    def eof_received(self):
        self.trace.append(("eof", self.total, self.hash.hexdigest()))

    def connection_lost(self, exc):
        self.trace.append(("lost", repr(exc)))
        self.done.set_result(None)


def large_transfer(loop, trace):
    r, w = socket.socketpair()
    data = payload(TOTAL, 1)

    async def main():
        sink = Sink(loop, trace)
        transport, _ = await loop.connect_accepted_socket(lambda: sink, r)
        sender = send_in_thread(w, data)
        await asyncio.wait_for(sink.done, 60)
        sender.join()
        trace.append(("hints", sorted(sink.hints)))
        trace.append(("sent", hashlib.sha256(data).hexdigest()))
    try:
        loop.run_until_complete(main())
    finally:
        w.close()


def buffered_error(kind):
    def scenario(loop, trace):
        r, w = socket.socketpair()
        loop.set_exception_handler(
            lambda loop, ctx: trace.append(("handler", ctx["message"], type(ctx.get("exception")).__name__)))

        class Bad(asyncio.BufferedProtocol):
            def __init__(self):
                self.buf = bytearray(64)
                self.done = loop.create_future()

            def get_buffer(self, sizehint):
                if kind == "get_buffer_raises":
                    raise ValueError("no buffer")
                if kind == "empty_buffer":
                    return bytearray()
                if kind == "read_only_buffer":
                    return b"read-only"
                return self.buf

            def buffer_updated(self, n):
                trace.append(("updated", bytes(self.buf[:n])))
                if kind == "buffer_updated_raises":
                    raise KeyError("bad update")

            def connection_lost(self, exc):
                trace.append(("lost", type(exc).__name__))
                self.done.set_result(None)

        async def main():
            p = Bad()
            await loop.connect_accepted_socket(lambda: p, r)
            w.sendall(b"hello")
            await asyncio.wait_for(p.done, 5)
        try:
            loop.run_until_complete(main())
        finally:
            w.close()
    return scenario


def switch_mid_stream(first_buffered):
    """The protocol changes every 512 KiB, buffered <-> plain, with transport.set_protocol
    from inside the callbacks; each protocol keeps what it was handed."""
    def scenario(loop, trace):
        r, w = socket.socketpair()
        data = payload(4 << 20, 2)
        step = 512 * 1024
        pieces = []  # (kind, bytes) in arrival order
        done = loop.create_future()

        class Common:
            def __init__(self, index):
                self.index = index
                self.got = 0

            def connection_made(self, transport):
                self.transport = transport

            def take(self, kind, chunk):
                pieces.append((kind, bytes(chunk)))
                self.got += len(chunk)
                if self.got >= step:
                    nxt = (Plain if isinstance(self, Buffered) else Buffered)(self.index + 1)
                    nxt.transport = self.transport
                    self.transport.set_protocol(nxt)

            def eof_received(self):
                trace.append(("eof", sum(len(b) for _, b in pieces)))

            def connection_lost(self, exc):
                done.set_result(exc)

        class Plain(Common, asyncio.Protocol):
            def data_received(self, data):
                self.take("plain", data)

        class Buffered(Common, asyncio.BufferedProtocol):
            def __init__(self, index):
                super().__init__(index)
                self.buf = bytearray(100_000)  # not a divisor of anything here

            def get_buffer(self, sizehint):
                return self.buf

            def buffer_updated(self, n):
                self.take("buffered", memoryview(self.buf)[:n])

        async def main():
            first = (Buffered if first_buffered else Plain)(0)
            await loop.connect_accepted_socket(lambda: first, r)
            sender = send_in_thread(w, data, chunk=64 * 1024)
            exc = await asyncio.wait_for(done, 60)
            sender.join()
            got = b"".join(b for _, b in pieces)
            trace.append(("bytes", len(got), got == data, repr(exc)))
            # Which kinds took bytes, in order (runs merged): both kinds, alternating.
            kinds = []
            for kind, _ in pieces:
                if not kinds or kinds[-1] != kind:
                    kinds.append(kind)
            trace.append(("kinds", kinds[:3]))
        try:
            loop.run_until_complete(main())
        finally:
            w.close()
    return scenario


def pause_inside_buffer_updated(loop, trace):
    """pause_reading() from buffer_updated holds every further read until
    resume_reading(); nothing is lost."""
    r, w = socket.socketpair()
    data = payload(1 << 20, 3)

    class P(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(32 * 1024)
            self.got = bytearray()
            self.paused = False
            self.updates_while_paused = 0
            self.done = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, n):
            if self.paused:
                self.updates_while_paused += 1
            self.got += self.buf[:n]
            if len(self.got) >= 100_000 and not hasattr(self, "pause_done"):
                self.pause_done = True
                self.paused = True
                self.transport.pause_reading()
                loop.call_later(0.05, self.resume)

        def resume(self):
            self.paused = False
            self.transport.resume_reading()

        def connection_lost(self, exc):
            self.done.set_result(None)

    async def main():
        p = P()
        await loop.connect_accepted_socket(lambda: p, r)
        sender = send_in_thread(w, data)
        await asyncio.wait_for(p.done, 30)
        sender.join()
        trace.append(("got", bytes(p.got) == data, p.updates_while_paused))
    try:
        loop.run_until_complete(main())
    finally:
        w.close()


def system_exit_in_get_buffer(first_plain):
    """get_buffer raising SystemExit leaves run_until_complete with it and the
    connection open; the next run reads on, every byte kept. first_plain: the
    buffered protocol comes by set_protocol after a plain one had data."""
    def scenario(loop, trace):
        r, w = socket.socketpair()
        got = bytearray()
        first_data = loop.create_future()
        done = loop.create_future()
        raised = []

        class B(asyncio.BufferedProtocol):
            def __init__(self):
                self.buf = bytearray(64)

            def connection_made(self, transport):
                self.transport = transport

            def get_buffer(self, sizehint):
                if not raised:
                    raised.append(True)
                    raise SystemExit(3)
                return self.buf

            def buffer_updated(self, n):
                got.extend(self.buf[:n])
                if len(got) >= 600 and not done.done():
                    done.set_result(None)

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                got.extend(data)
                b = B()
                b.transport = self.transport
                self.transport.set_protocol(b)
                first_data.set_result(None)

        async def start():
            transport, _ = await loop.connect_accepted_socket(P if first_plain else B, r)
            return transport
        data = payload(600, 4)
        try:
            transport = loop.run_until_complete(start())
            if first_plain:
                w.sendall(data[:300])
                loop.run_until_complete(asyncio.wait_for(first_data, 5))
                w.sendall(data[300:])
            else:
                w.sendall(data)
            try:
                loop.run_until_complete(asyncio.wait_for(done, 5))
            except SystemExit as e:
                trace.append(("exit", e.code))
            loop.run_until_complete(asyncio.wait_for(done, 5))
            trace.append(("got", bytes(got) == data, len(got)))
            transport.close()
            loop.run_until_complete(asyncio.sleep(0.01))
        finally:
            w.close()
    return scenario


SCENARIOS = {
    "system_exit_in_get_buffer": system_exit_in_get_buffer(False),
    "system_exit_in_get_buffer_after_a_switch": system_exit_in_get_buffer(True),
    "large_transfer_reads_into_the_protocols_buffer": large_transfer,
    "get_buffer_raises": buffered_error("get_buffer_raises"),
    "empty_buffer": buffered_error("empty_buffer"),
    "read_only_buffer": buffered_error("read_only_buffer"),
    "buffer_updated_raises": buffered_error("buffer_updated_raises"),
    "switch_buffered_then_plain_mid_stream": switch_mid_stream(True),
    "switch_plain_then_buffered_mid_stream": switch_mid_stream(False),
    "pause_inside_buffer_updated": pause_inside_buffer_updated,
}


BufferedProtocolTest = trace_tests("BufferedProtocolTest", SCENARIOS)


if __name__ == "__main__":
    unittest.main()
