"""No fd, reference or eddy resource left behind by close()."""

import asyncio
import gc
import os
import socket
import sys
import unittest
import weakref

import eddyloop
from support import open_fds


class Marker:
    """A callback argument whose references we count."""


def cancel_all(loop):
    """What asyncio.run does before closing: cancel the tasks still pending."""
    tasks = asyncio.all_tasks(loop)
    for t in tasks:
        t.cancel()

    async def wait():
        await asyncio.gather(*tasks, return_exceptions=True)

    loop.run_until_complete(wait())


def echo_round(loop, clients=20):
    async def handle(reader, writer):
        while data := await reader.read(4096):
            writer.write(data)
        writer.close()

    async def client(port):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"ping")
        assert await r.readexactly(4) == b"ping"
        w.close()
        await w.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await asyncio.gather(*(client(port) for _ in range(clients)))
        # Connections still open when the loop closes must be closed by close().
        lingering = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        server.close()
        await server.wait_closed()
        return lingering

    return loop.run_until_complete(main())


class LeakTest(unittest.TestCase):
    def test_close_releases_fds_and_transports(self):
        gc.collect()
        before = open_fds()
        loop = eddyloop.new_event_loop()
        lingering = echo_round(loop)
        refs = [weakref.ref(w.transport) for _, w in lingering]
        del lingering
        cancel_all(loop)
        loop.close()
        gc.collect()
        self.assertEqual([r() for r in refs], [None, None, None])
        self.assertEqual(open_fds(), before)

    def test_many_loops_do_not_grow_fds(self):
        gc.collect()
        before = open_fds()
        for _ in range(20):
            loop = eddyloop.new_event_loop()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
        gc.collect()
        self.assertEqual(open_fds(), before)

    def test_callbacks_and_timers_release_their_arguments(self):
        loop = eddyloop.new_event_loop()
        m = Marker()
        base = sys.getrefcount(m)
        loop.call_soon(id, m)
        loop.call_soon(id, m).cancel()
        loop.call_later(0.001, id, m)
        loop.call_later(10, id, m).cancel()
        loop.call_at(loop.time() + 100, id, m)  # still pending at close()
        loop.call_soon_threadsafe(id, m)
        self.assertGreater(sys.getrefcount(m), base)
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
        loop.close()
        gc.collect()
        self.assertEqual(sys.getrefcount(m), base)

    def test_closed_loop_and_its_protocols_are_collected(self):
        loop = eddyloop.new_event_loop()

        class P(asyncio.Protocol):
            pass

        async def main():
            server = await loop.create_server(P, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            tr, proto = await loop.create_connection(P, "127.0.0.1", port)
            return server, weakref.ref(proto)

        server, proto_ref = loop.run_until_complete(main())
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop_ref = weakref.ref(loop)
        loop.close()
        del loop, server
        gc.collect()
        self.assertIsNone(proto_ref())
        self.assertIsNone(loop_ref())

    def test_repeated_echo_rounds_do_not_grow_objects(self):
        loop = eddyloop.new_event_loop()
        for _ in range(2):  # warm caches (asyncio, codecs, the frame pools)
            for r, w in echo_round(loop, 10):
                w.close()
        gc.collect()
        before = len(gc.get_objects())
        for _ in range(5):
            for r, w in echo_round(loop, 10):
                w.close()
        loop.run_until_complete(asyncio.sleep(0.01))
        gc.collect()
        grown = len(gc.get_objects()) - before
        cancel_all(loop)
        loop.close()
        self.assertLess(grown, 200, f"{grown} objects more after 5 rounds")


if __name__ == "__main__":
    unittest.main()
