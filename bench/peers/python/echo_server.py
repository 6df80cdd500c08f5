"""asyncio echo server with the protocol API, as uvloop's own benchmark writes it:
the uvloop and plain-asyncio peers of samples/echo_server (bench/compare).

    /usr/bin/python3 echo_server.py --loop uvloop|asyncio [--port PORT]
"""
import argparse
import asyncio
import socket


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.transport = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument("--port", type=int, default=7000)
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(Echo, "127.0.0.1", args.port, backlog=4096))
    print(f"listening on 127.0.0.1 {args.port}", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
