"""TLS on eddyloop: asyncio's TLS layer (asyncio.sslproto) over eddy's stream
transports, checked against itself, against the ssl module's blocking sockets in
another thread (so what goes over the wire is plain TLS), with STARTTLS, with a
certificate the client rejects, with a peer that never finishes its handshake and
with a peer that vanishes mid-stream."""

import asyncio
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

from support import LoopTest, open_fds

try:
    import aiohttp
    from aiohttp import web
except ImportError:  # python3-aiohttp (scripts/lib/setup.sh installs it)
    aiohttp = None

_dir = None


def setUpModule():
    # A throw-away self-signed certificate for localhost / 127.0.0.1, made by the
    # openssl command-line tool (the ssl module cannot make one).
    global _dir
    _dir = tempfile.TemporaryDirectory()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", os.path.join(_dir.name, "key.pem"), "-out", os.path.join(_dir.name, "cert.pem")],
        check=True, capture_output=True, timeout=60)


def tearDownModule():
    _dir.cleanup()


def server_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(_dir.name, "cert.pem"), os.path.join(_dir.name, "key.pem"))
    return ctx


def client_context():
    ctx = ssl.create_default_context(cafile=os.path.join(_dir.name, "cert.pem"))
    return ctx


class Echo(asyncio.Protocol):
    def __init__(self, lost=None):
        self.lost = lost

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False  # close once the echo is sent

    def connection_lost(self, exc):
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(exc)


class TlsTest(LoopTest):
    async def echo_server(self, **kw):
        server = await self.loop.create_server(Echo, "127.0.0.1", 0, ssl=server_context(), **kw)
        self.addCleanup(server.close)
        return server, server.sockets[0].getsockname()[1]

    def test_echo_many_clients_both_ends_on_eddyloop(self):
        async def client(port, payload):
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(),
                                                 server_hostname="localhost")
            sslobj = w.get_extra_info("ssl_object")
            self.assertTrue(sslobj.version().startswith("TLS"), sslobj.version())
            self.assertEqual(w.get_extra_info("peercert")["subject"], ((("commonName", "localhost"),),))
            self.assertIsNotNone(w.get_extra_info("cipher"))
            self.assertEqual(w.get_extra_info("peername")[0], "127.0.0.1")

            async def send():
                for i in range(0, len(payload), 16384):
                    w.write(payload[i:i + 16384])
                    await w.drain()
                w.write_eof() if w.can_write_eof() else None

            sender = asyncio.ensure_future(send())
            got = await r.readexactly(len(payload))
            await sender
            w.close()
            await w.wait_closed()
            return got

        async def main():
            fds = open_fds()
            server, port = await self.echo_server()
            payloads = [os.urandom(256 * 1024 + i) for i in range(20)]
            got = await asyncio.gather(*(client(port, p) for p in payloads))
            for p, g in zip(payloads, got):
                self.assertEqual(p, g)
            server.close()
            await server.wait_closed()
            for _ in range(20):
                await asyncio.sleep(0.01)
            self.assertEqual(open_fds(), fds)

        self.run_async(main())

    def test_interoperates_with_blocking_ssl_sockets(self):
        # A plain ssl-module peer in a thread, each way round.
        payload = os.urandom(300 * 1024)

        def blocking_server(lsock, out):
            conn, _ = lsock.accept()
            with server_context().wrap_socket(conn, server_side=True) as s:
                data = bytearray()
                while len(data) < len(payload):
                    data += s.recv(65536)
                s.sendall(bytes(reversed(data)))
                out.append(bytes(data))
                # Wait for the client's close_notify before closing: a socket
                # closed with the alert still on the way answers it with a TCP
                # reset, which the client's wait_closed() then raises (seen once in
                # about 30 runs).
                try:
                    while s.recv(65536):
                        pass
                    s.unwrap()
                except (ssl.SSLError, OSError):
                    pass

        def blocking_client(port):
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with client_context().wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(payload)
                    data = bytearray()
                    while len(data) < len(payload):
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    return bytes(data)

        async def main():
            # eddyloop client, blocking server.
            lsock = socket.create_server(("127.0.0.1", 0))
            self.addCleanup(lsock.close)
            out = []
            t = threading.Thread(target=blocking_server, args=(lsock, out))
            t.start()
            try:
                r, w = await asyncio.open_connection(*lsock.getsockname(), ssl=client_context(),
                                                     server_hostname="localhost")
                w.write(payload)
                await w.drain()
                self.assertEqual(await r.readexactly(len(payload)), bytes(reversed(payload)))
                w.close()
                await w.wait_closed()
            finally:
                await self.loop.run_in_executor(None, t.join, 10)
            self.assertEqual(out, [payload])
            # Blocking client, eddyloop server.
            server, port = await self.echo_server()
            self.assertEqual(await self.loop.run_in_executor(None, blocking_client, port), payload)

        self.run_async(main())

    def test_starttls_on_both_ends(self):
        async def main():
            upgraded = self.loop.create_future()

            async def handle(reader, writer):
                self.assertEqual(await reader.readline(), b"STARTTLS\n")
                writer.write(b"GO\n")
                await writer.drain()
                await writer.start_tls(server_context())
                self.assertIsNotNone(writer.get_extra_info("ssl_object"))
                line = await reader.readline()
                writer.write(line.upper())
                await writer.drain()
                writer.close()
                upgraded.set_result(line)

            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.addCleanup(server.close)
            r, w = await asyncio.open_connection(*server.sockets[0].getsockname())
            self.assertIsNone(w.get_extra_info("ssl_object"))
            w.write(b"STARTTLS\n")
            self.assertEqual(await r.readline(), b"GO\n")
            await w.start_tls(client_context(), server_hostname="localhost")
            self.assertIsNotNone(w.get_extra_info("ssl_object"))
            w.write(b"secret\n")
            self.assertEqual(await r.readline(), b"SECRET\n")
            self.assertEqual(await upgraded, b"secret\n")
            w.close()
            await w.wait_closed()

        self.run_async(main())

    def test_rejected_certificate_fails_the_client_and_leaves_the_server_serving(self):
        async def main():
            self.collect_errors()
            server, port = await self.echo_server()
            strict = ssl.create_default_context()  # the test certificate is not trusted
            with self.assertRaises(ssl.SSLCertVerificationError):
                await asyncio.open_connection("127.0.0.1", port, ssl=strict, server_hostname="localhost")
            wrong_name = client_context()
            with self.assertRaises(ssl.SSLCertVerificationError):
                await asyncio.open_connection("127.0.0.1", port, ssl=wrong_name, server_hostname="example.org")
            # The server is still there for a client that trusts it.
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(),
                                                 server_hostname="localhost")
            w.write(b"still here")
            self.assertEqual(await r.readexactly(10), b"still here")
            w.close()
            await w.wait_closed()

        self.run_async(main())

    def test_handshake_timeout_closes_a_silent_peer(self):
        async def main():
            server, port = await self.echo_server(ssl_handshake_timeout=0.2)
            # A raw TCP peer that never sends a ClientHello: the server gives up.
            r, w = await asyncio.open_connection("127.0.0.1", port)
            t0 = self.loop.time()
            self.assertEqual(await asyncio.wait_for(r.read(), 10), b"")
            self.assertLess(self.loop.time() - t0, 9)
            w.close()
            with self.assertRaises(ValueError):
                await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                                  ssl_handshake_timeout=1)  # needs ssl=

        self.run_async(main())

    def test_peer_vanishing_mid_stream_ends_the_server_side(self):
        async def main():
            lost = self.loop.create_future()
            server = await self.loop.create_server(lambda: Echo(lost), "127.0.0.1", 0, ssl=server_context())
            self.addCleanup(server.close)
            r, w = await asyncio.open_connection(*server.sockets[0].getsockname(), ssl=client_context(),
                                                 server_hostname="localhost")
            w.write(b"x" * 100000)
            await r.readexactly(1000)
            w.transport.abort()  # no close_notify, TCP reset or FIN mid-record
            exc = await asyncio.wait_for(lost, 10)
            self.assertTrue(exc is None or isinstance(exc, OSError), repr(exc))

        self.run_async(main())

    def test_sendfile_over_tls_goes_through_the_tls_transport(self):
        # os.sendfile would bypass the encryption: over TLS, loop.sendfile must
        # copy through the TLS transport (asyncio's fallback), and the peer must
        # decrypt exactly the file.
        import tempfile

        data = os.urandom(3 * 1024 * 1024 + 5)

        async def main():
            got = bytearray()
            done = self.loop.create_future()

            class Sink(asyncio.Protocol):
                def data_received(self, b):
                    got.extend(b)

                def connection_lost(self, exc):
                    done.set_result(exc)

            server = await self.loop.create_server(Sink, "127.0.0.1", 0, ssl=server_context())
            self.addCleanup(server.close)
            port = server.sockets[0].getsockname()[1]
            tr, _ = await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=client_context())
            with tempfile.TemporaryFile() as f:
                f.write(data)
                f.seek(0)
                with self.assertRaises(RuntimeError):  # asyncio's answer for a TLS transport
                    await self.loop.sendfile(tr, f, fallback=False)
                self.assertEqual(await self.loop.sendfile(tr, f, offset=5), len(data) - 5)
            tr.close()
            self.assertIsNone(await asyncio.wait_for(done, 10))
            self.assertEqual(bytes(got), data[5:])

        self.run_async(main())


@unittest.skipIf(aiohttp is None, "python3-aiohttp is not installed")
class HttpsTest(LoopTest):
    def test_aiohttp_over_https(self):
        async def echo(request):
            return web.Response(body=(await request.read())[::-1],
                                headers={"X-TLS": request.transport.get_extra_info("ssl_object").version()})

        async def main():
            app = web.Application()
            app.router.add_post("/echo", echo)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context())
            await site.start()
            port = runner.addresses[0][1]
            done = 0
            try:
                conn = aiohttp.TCPConnector(limit=10, ssl=client_context())
                async with aiohttp.ClientSession(connector=conn) as session:
                    async def worker(w):
                        nonlocal done
                        for i in range(w, 500, 10):
                            body = os.urandom(1 + i * 97)
                            async with session.post(f"https://localhost:{port}/echo", data=body) as r:
                                self.assertEqual(r.status, 200)
                                self.assertTrue(r.headers["X-TLS"].startswith("TLS"))
                                self.assertEqual(await r.read(), body[::-1])
                            done += 1

                    await asyncio.gather(*(worker(w) for w in range(10)))
            finally:
                await runner.cleanup()
            return done

        self.assertEqual(self.run_async(main(), timeout=50), 500)


if __name__ == "__main__":
    unittest.main()
