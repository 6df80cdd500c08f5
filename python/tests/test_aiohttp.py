"""aiohttp, unchanged, on eddy's loop: a server and a client exchanging 10,000
requests (keep-alive connections, GET and POST with bodies)."""

import asyncio
import unittest

from support import LoopTest

try:
    import aiohttp
    from aiohttp import web
except ImportError:  # python3-aiohttp (scripts/lib/setup.sh installs it)
    aiohttp = None

REQUESTS = 10_000
CONCURRENCY = 50


@unittest.skipIf(aiohttp is None, "python3-aiohttp is not installed")
class AiohttpTest(LoopTest):
    def test_server_and_client_exchange_10000_requests(self):
        async def hello(request):
            return web.Response(text="hello " + request.match_info["name"])

        async def echo(request):
            body = await request.read()
            return web.Response(body=body[::-1], headers={"X-Len": str(len(body))})

        async def main():
            app = web.Application()
            app.router.add_get("/hello/{name}", hello)
            app.router.add_post("/echo", echo)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            done = 0
            try:
                conn = aiohttp.TCPConnector(limit=CONCURRENCY)
                async with aiohttp.ClientSession(connector=conn) as session:
                    async def worker(w):
                        nonlocal done
                        for i in range(w, REQUESTS, CONCURRENCY):
                            if i % 2:
                                async with session.get(f"http://127.0.0.1:{port}/hello/{i}") as r:
                                    self.assertEqual(r.status, 200)
                                    self.assertEqual(await r.text(), f"hello {i}")
                            else:
                                body = b"%d" % i * (1 + i % 50)
                                async with session.post(f"http://127.0.0.1:{port}/echo", data=body) as r:
                                    self.assertEqual(r.status, 200)
                                    self.assertEqual(r.headers["X-Len"], str(len(body)))
                                    self.assertEqual(await r.read(), body[::-1])
                            done += 1

                    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
            finally:
                await runner.cleanup()
            return done

        self.assertEqual(self.run_async(main(), timeout=50), REQUESTS)

    def test_request_followed_by_fin_is_handled_without_error(self):
        # A client that sends its request and closes at once (wrk at the end of a
        # run): aiohttp must not see connection_lost before the request's task ran.
        async def hello(request):
            return web.Response(text="hello")

        async def main():
            app = web.Application()
            app.router.add_get("/", hello)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            try:
                with self.assertNoLogs("aiohttp", level="ERROR"):
                    for _ in range(10):
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        writer.write_eof()
                        await reader.read()  # aiohttp closes on EOF
                        writer.close()
                        await writer.wait_closed()
                    await asyncio.sleep(0.01)
            finally:
                await runner.cleanup()

        self.run_async(main())


if __name__ == "__main__":
    unittest.main()
