"""Echo server for bench/python/run.py: one of three asyncio server styles on one
of three loops, as uvloop's own benchmark (examples/bench/echoserver.py) runs them.

    echo_server.py --loop asyncio|uvloop|eddy --mode protocol|streams|sock --port P

Prints "ready" once listening; runs until SIGTERM/SIGINT.
"""

import argparse
import asyncio
import signal
import socket
import sys


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def stream_echo(reader, writer):
    try:
        while True:
            data = await reader.read(102400)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the load generator resets its connections when it stops
    writer.close()


async def sock_echo(loop, conn):
    with conn:
        try:
            while True:
                data = await loop.sock_recv(conn, 102400)
                if not data:
                    break
                await loop.sock_sendall(conn, data)
        except ConnectionError:
            pass  # the load generator resets its connections when it stops


async def sock_server(loop, port, started):
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(1024)
    lsock.setblocking(False)
    started.set()
    tasks = set()
    with lsock:
        while True:
            conn, _ = await loop.sock_accept(lsock)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = loop.create_task(sock_echo(loop, conn))
            tasks.add(t)
            t.add_done_callback(tasks.discard)


def make_loop(name):
    if name == "asyncio":
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == "eddy":
        import eddyloop
        return eddyloop.new_event_loop()
    raise SystemExit(f"unknown loop {name!r} (asyncio, uvloop or eddy)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", required=True)
    ap.add_argument("--mode", required=True, choices=["protocol", "streams", "sock"])
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    if not 1 <= a.port <= 65535:
        raise SystemExit("--port must be 1..65535")
    loop = make_loop(a.loop)
    asyncio.set_event_loop(loop)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    async def run():
        if a.mode == "protocol":
            srv = await loop.create_server(EchoProtocol, "127.0.0.1", a.port, backlog=1024)
        elif a.mode == "streams":
            srv = await asyncio.start_server(stream_echo, "127.0.0.1", a.port, backlog=1024)
        else:
            started = asyncio.Event()
            srv = loop.create_task(sock_server(loop, a.port, started))
            await started.wait()
        print("ready", flush=True)
        await stop
        if a.mode == "sock":
            srv.cancel()
        else:
            srv.close()

    loop.run_until_complete(run())
    loop.close()


if __name__ == "__main__":
    sys.exit(main())
