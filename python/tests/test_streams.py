"""asyncio streams, unchanged, on eddy's loop: 1,000 clients against one echo server."""

import asyncio
import unittest

from support import LoopTest

CLIENTS = 1000
ROUNDS = 3


class StreamsTest(LoopTest):
    def test_echo_with_1000_clients(self):
        handlers_done = 0

        async def handle(reader, writer):
            nonlocal handlers_done
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()
            handlers_done += 1

        async def client(port, i):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            line = b"client %d says hello\n" % i
            for _ in range(ROUNDS):
                writer.write(line * (1 + i % 7))
                await writer.drain()
                for _ in range(1 + i % 7):
                    self.assertEqual(await reader.readline(), line)
            writer.write_eof()
            self.assertEqual(await reader.read(), b"")
            writer.close()
            await writer.wait_closed()
            return i

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=CLIENTS)
            port = server.sockets[0].getsockname()[1]
            async with server:
                done = await asyncio.gather(*(client(port, i) for i in range(CLIENTS)))
                self.assertEqual(done, list(range(CLIENTS)))
                while handlers_done < CLIENTS:
                    await asyncio.sleep(0.001)

        self.run_async(main(), timeout=50)
        self.assertEqual(handlers_done, CLIENTS)

    def test_readexactly_and_incomplete_read(self):
        async def handle(reader, writer):
            writer.write(b"12345")
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            self.assertEqual(await reader.readexactly(3), b"123")
            with self.assertRaises(asyncio.IncompleteReadError) as cm:
                await reader.readexactly(5)
            self.assertEqual(cm.exception.partial, b"45")
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

        self.run_async(main())


if __name__ == "__main__":
    unittest.main()
