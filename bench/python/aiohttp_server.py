"""aiohttp hello-world server for bench/python/run.py (benchmarks (d) and, with
--tls, (e); with --file, (f): GET /file answers with that file through
web.FileResponse, which sends it with loop.sendfile; driven by wrk).

    aiohttp_server.py --loop asyncio|uvloop|eddy --port P [--tls CERT KEY] [--file PATH]

Prints "ready" once listening; runs until SIGTERM/SIGINT.
"""

import argparse
import asyncio
import os
import signal
import ssl

from aiohttp import web

from echo_server import make_loop


async def hello(request):
    return web.Response(text="Hello, World!")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this certificate")
    ap.add_argument("--file", help="serve this file at /file")
    a = ap.parse_args()
    if not 1 <= a.port <= 65535:
        raise SystemExit("--port must be 1..65535")
    if a.file and not os.path.isfile(a.file):
        raise SystemExit(f"--file {a.file}: not a regular file")
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*a.tls)
    loop = make_loop(a.loop)
    asyncio.set_event_loop(loop)

    async def run():
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        app = web.Application()
        app.router.add_get("/", hello)
        if a.file:
            app.router.add_get("/file", lambda request: web.FileResponse(a.file))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", a.port, backlog=1024, ssl_context=ctx).start()
        print("ready", flush=True)
        await stop
        await runner.cleanup()

    loop.run_until_complete(run())
    loop.close()


if __name__ == "__main__":
    main()
