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


if __name__ == "__main__":
    unittest.main()
