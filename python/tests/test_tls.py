"""TLS on eddyloop: the session runs in C inside eddy's stream transport (the
user's ssl.SSLContext's own SSL_CTX), with asyncio.sslproto left for contexts the
C layer does not take. Checked against itself, against the ssl module's blocking
sockets in another thread (so what goes over the wire is plain TLS), with
STARTTLS, with a certificate the client rejects, with a peer that never finishes
its handshake and with a peer that vanishes mid-stream; and scenario by scenario
against asyncio's own loop (TlsLikeAsyncioTest: the two traces must be equal)."""

import asyncio
import gc
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

import eddyloop
from eddyloop import _core
from support import LoopTest, open_fds, trace_tests

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
            gc.collect()  # sockets an earlier test's failed connects left to the collector
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


# ---- the same scenarios on asyncio's own loop and on eddyloop -----------------

def _run(loop, coro, timeout=30):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


class Recorder(asyncio.Protocol):
    """Writes what a protocol sees into `trace` (byte counts, not bytes)."""

    def __init__(self, trace, tag, reply=None, close_after=None):
        self.trace, self.tag, self.reply, self.close_after = trace, tag, reply, close_after
        self.got = bytearray()
        self.lost = asyncio.get_event_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.trace.append((self.tag, "made"))
        if self.reply is not None:
            transport.write(self.reply)
            if self.close_after:
                transport.close()

    def data_received(self, data):
        self.got += data

    def eof_received(self):
        self.trace.append((self.tag, "eof", len(self.got)))

    def connection_lost(self, exc):
        self.trace.append((self.tag, "lost", len(self.got), type(exc).__name__ if exc else None))
        if not self.lost.done():
            self.lost.set_result(exc)


def _by_side(trace):
    """The two ends' events, each end's in its order: which end's callback runs
    first across the connection depends on the loop's turns, not on the API."""
    trace[:] = sorted(trace, key=lambda e: e[0] if isinstance(e, tuple) and e[0] in ("client", "server") else "")


def _session_facts(transport):
    sslobj = transport.get_extra_info("ssl_object")
    return (transport.get_extra_info("peercert"), transport.get_extra_info("cipher")[1:],
            transport.get_extra_info("compression"), sslobj.version(), sslobj.selected_alpn_protocol(),
            sslobj.server_side, sslobj.server_hostname, transport.get_extra_info("sslcontext") is not None,
            len(sslobj.getpeercert(binary_form=True) or b""), sslobj.cipher()[1:],
            transport.can_write_eof())


def scenario_echo_8mib_both_ways(loop, trace):
    size = int(os.environ.get("EDDYLOOP_TLS_BIG", 8 * 1024 * 1024))
    payload = os.urandom(size)

    async def main():
        server = await asyncio.start_server(_echo_handler, "127.0.0.1", 0, ssl=server_context())
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(), server_hostname="localhost")
        trace.append(_session_facts(w.transport))

        async def send():
            for i in range(0, len(payload), 1 << 20):
                w.write(payload[i:i + (1 << 20)])
                await w.drain()

        sender = asyncio.ensure_future(send())
        got = await r.readexactly(len(payload))
        await sender
        trace.append(("echoed", got == payload))
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()

    _run(loop, main())


async def _echo_handler(reader, writer):
    facts = _session_facts(writer.transport)
    while True:
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        writer.write(chunk)
        await writer.drain()
    writer.close()
    assert facts[3].startswith("TLS")


def scenario_alpn_is_negotiated(loop, trace):
    async def main():
        sctx = server_context()
        sctx.set_alpn_protocols(["h2", "http/1.1"])
        seen = loop.create_future()
        server = await loop.create_server(lambda: _AlpnServer(seen), "127.0.0.1", 0, ssl=sctx)
        for offer in (["http/1.1"], ["spdy/3", "h2"], ["nothing/1"]):
            cctx = client_context()
            cctx.set_alpn_protocols(offer)
            seen = loop.create_future()
            server._protocol_factory = lambda seen=seen: _AlpnServer(seen)
            try:
                tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", server.sockets[0].getsockname()[1],
                                                     ssl=cctx, server_hostname="localhost")
            except ssl.SSLError as e:  # no protocol in common: the server says no_application_protocol
                trace.append(("refused", type(e).__name__))
                continue
            trace.append(("client", tr.get_extra_info("ssl_object").selected_alpn_protocol()))
            trace.append(("server", await seen))
            tr.close()
        server.close()
        await server.wait_closed()

    _run(loop, main())


class _AlpnServer(asyncio.Protocol):
    def __init__(self, seen):
        self.seen = seen

    def connection_made(self, transport):
        if not self.seen.done():
            self.seen.set_result(transport.get_extra_info("ssl_object").selected_alpn_protocol())


def scenario_client_sends_sni_for_names_not_addresses(loop, trace):
    # The server's sni_callback (which keeps that server on sslproto on both
    # loops) records what the client sent.
    async def main():
        names = []
        sctx = server_context()
        sctx.sni_callback = lambda sslobj, name, ctx: names.append(name)
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        for host in ("localhost", "127.0.0.1"):
            tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=client_context(),
                                                 server_hostname=host)
            tr.close()
        trace.append(names)
        server.close()
        await server.wait_closed()

    _run(loop, main())


def _verify_error_facts(e):
    return (type(e).__name__, e.reason, e.library, getattr(e, "verify_code", None),
            getattr(e, "verify_message", None), e.args[0])


def scenario_untrusted_certificate_and_wrong_name_fail_verification(loop, trace):
    async def main():
        loop.set_exception_handler(lambda loop, ctx: trace.append(("handler", ctx["message"])))
        lost = []
        server = await loop.create_server(lambda: Recorder(lost, "server"), "127.0.0.1", 0, ssl=server_context())
        port = server.sockets[0].getsockname()[1]
        for ctx, name in ((ssl.create_default_context(), "localhost"), (client_context(), "example.org"),
                          (client_context(), "127.0.0.2")):
            try:
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=ctx, server_hostname=name)
                trace.append("connected")
            except ssl.SSLCertVerificationError as e:
                # An address's mismatch names it in CPython's words: "IP address
                # mismatch, certificate is not valid for '127.0.0.2'."
                trace.append(_verify_error_facts(e))
        await asyncio.sleep(0.2)
        trace.append(("server protocols told", lost))  # never: their handshake failed
        server.close()
        await server.wait_closed()

    _run(loop, main())


def scenario_handshake_timeout_against_a_silent_server(loop, trace):
    async def main():
        lsock = socket.create_server(("127.0.0.1", 0))
        try:
            with trace_time(loop, trace, 0.2, 5):
                await loop.create_connection(asyncio.Protocol, *lsock.getsockname(), ssl=client_context(),
                                             server_hostname="localhost", ssl_handshake_timeout=0.3)
        except ConnectionAbortedError as e:
            trace.append((type(e).__name__, str(e)))
        finally:
            lsock.close()

    _run(loop, main())


class trace_time:
    """Records whether the block took between lo and hi seconds (behaviour: the
    timeout fired, and not at once), not the time itself."""

    def __init__(self, loop, trace, lo, hi):
        self.loop, self.trace, self.lo, self.hi = loop, trace, lo, hi

    def __enter__(self):
        self.t0 = self.loop.time()

    def __exit__(self, *exc):
        self.trace.append(("in time", self.lo <= self.loop.time() - self.t0 < self.hi))
        return False


def scenario_server_close_sends_close_notify(loop, trace):
    async def main():
        server = await loop.create_server(lambda: Recorder(trace, "server", b"bye" * 1000, close_after=True),
                                          "127.0.0.1", 0, ssl=server_context())
        port = server.sockets[0].getsockname()[1]
        client = Recorder(trace, "client")
        await loop.create_connection(lambda: client, "127.0.0.1", port, ssl=client_context(),
                                     server_hostname="localhost")
        await asyncio.wait_for(client.lost, 10)
        await asyncio.sleep(0.1)
        server.close()
        await server.wait_closed()
        _by_side(trace)

    _run(loop, main())


def scenario_client_close_ends_both_sides(loop, trace):
    async def main():
        srv = []
        server = await loop.create_server(lambda: srv.append(Recorder(trace, "server")) or srv[-1],
                                          "127.0.0.1", 0, ssl=server_context())
        port = server.sockets[0].getsockname()[1]
        client = Recorder(trace, "client")
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port, ssl=client_context(),
                                             server_hostname="localhost")
        tr.write(b"x" * 100000)
        try:
            tr.write_eof()
        except NotImplementedError as e:
            trace.append(("write_eof", str(e)))
        tr.close()
        trace.append(("closing", tr.is_closing()))
        await asyncio.wait_for(client.lost, 10)
        await asyncio.wait_for(srv[0].lost, 10)
        server.close()
        await server.wait_closed()
        _by_side(trace)

    _run(loop, main())


def scenario_peer_ending_without_close_notify(loop, trace):
    # A blocking ssl-module peer that sends, then closes its TCP socket without
    # unwrapping (no close_notify): asyncio reports eof_received and a clean
    # connection_lost, not an error.
    def peer(lsock):
        conn, _ = lsock.accept()
        s = server_context().wrap_socket(conn, server_side=True)
        s.sendall(b"z" * 50000)
        raw = socket.socket(fileno=s.detach())
        raw.shutdown(socket.SHUT_WR)
        try:
            while raw.recv(65536):
                pass
        except OSError:
            pass
        raw.close()

    async def main():
        lsock = socket.create_server(("127.0.0.1", 0))
        t = threading.Thread(target=peer, args=(lsock,))
        t.start()
        client = Recorder(trace, "client")
        await loop.create_connection(lambda: client, *lsock.getsockname(), ssl=client_context(),
                                     server_hostname="localhost")
        await asyncio.wait_for(client.lost, 10)
        await loop.run_in_executor(None, t.join, 10)
        lsock.close()

    _run(loop, main())


def scenario_pause_reading_holds_the_plaintext(loop, trace):
    async def main():
        server = await loop.create_server(lambda: Recorder([], "server", b"p" * (1 << 20), close_after=True),
                                          "127.0.0.1", 0, ssl=server_context())
        port = server.sockets[0].getsockname()[1]
        got = []
        arrived = loop.create_future()

        class Pauser(Recorder):
            def data_received(self, data):
                super().data_received(data)
                got.append(len(data))
                if len(got) == 1:
                    self.transport.pause_reading()
                    trace.append(("reading", self.transport.is_reading()))
                    arrived.set_result(None)

        client = Pauser(trace, "client")
        tr, _ = await loop.create_connection(lambda: client, "127.0.0.1", port, ssl=client_context(),
                                             server_hostname="localhost")
        await arrived
        await asyncio.sleep(0.3)
        trace.append(("while paused", len(got)))
        tr.resume_reading()
        await asyncio.wait_for(client.lost, 10)
        trace.append(("total", sum(got)))
        server.close()
        await server.wait_closed()

    _run(loop, main())


def scenario_buffered_protocol_reads_over_tls(loop, trace):
    class Sink(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(70000)
            self.total = 0
            self.lost = asyncio.get_event_loop().create_future()

        def get_buffer(self, hint):
            return self.buf

        def buffer_updated(self, n):
            self.total += n

        def eof_received(self):
            trace.append(("eof", self.total))

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        server = await loop.create_server(lambda: Recorder([], "server", b"q" * 3_000_000, close_after=True),
                                          "127.0.0.1", 0, ssl=server_context())
        sink = Sink()
        await loop.create_connection(lambda: sink, "127.0.0.1", server.sockets[0].getsockname()[1],
                                     ssl=client_context(), server_hostname="localhost")
        trace.append(("lost", await asyncio.wait_for(sink.lost, 10), sink.total))
        server.close()
        await server.wait_closed()

    _run(loop, main())


def scenario_plain_text_client_on_a_tls_port(loop, trace):
    async def main():
        loop.set_exception_handler(lambda loop, ctx: trace.append(("handler", ctx["message"])))
        server = await loop.create_server(lambda: Recorder(trace, "server"), "127.0.0.1", 0, ssl=server_context())
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.0\r\n\r\n")
        try:
            trace.append(("plain client got", await asyncio.wait_for(r.read(), 10)))
        except ConnectionResetError:
            trace.append(("plain client got", "reset"))
        w.close()
        # Still serving TLS clients.
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=client_context(),
                                             server_hostname="localhost")
        tr.close()
        await asyncio.sleep(0.1)
        server.close()
        await server.wait_closed()

    _run(loop, main())


def scenario_start_tls_upgrades_a_plain_connection(loop, trace):
    async def main():
        async def handle(reader, writer):
            await reader.readline()
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_context())
            trace.append(("server", writer.get_extra_info("ssl_object").version()[:3]))
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*server.sockets[0].getsockname())
        w.write(b"STARTTLS\n")
        await r.readline()
        await w.start_tls(client_context(), server_hostname="localhost")
        trace.append(_session_facts(w.transport))
        w.write(b"over tls\n")
        trace.append(await r.readline())
        trace.append(await r.read())
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()

    _run(loop, main())


def scenario_write_flow_control_pauses_and_resumes_the_writer(loop, trace):
    # The server does not read for a while and the kernel's buffers are small:
    # the client's 8 MiB back up, its protocol is told to pause, then to resume
    # once the server reads again.
    async def main():
        server_tr = loop.create_future()
        server_lost = loop.create_future()
        got = [0]

        class Slow(asyncio.Protocol):
            def connection_made(self, transport):
                transport.pause_reading()
                server_tr.set_result(transport)

            def data_received(self, data):
                got[0] += len(data)

            def connection_lost(self, exc):
                server_lost.set_result(exc)

        class Writer(asyncio.Protocol):
            def __init__(self):
                self.events = []
                self.resumed = loop.create_future()

            def connection_made(self, transport):
                self.transport = transport

            def pause_writing(self):
                self.events.append(("pause", self.transport.get_write_buffer_size() > 65536))

            def resume_writing(self):
                self.events.append(("resume", self.transport.get_write_buffer_size() <= 16384))
                if not self.resumed.done():
                    self.resumed.set_result(None)

        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        server = await loop.create_server(Slow, sock=lsock, ssl=server_context())
        csock = socket.socket()
        csock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        csock.setblocking(False)
        await loop.sock_connect(csock, lsock.getsockname())
        w = Writer()
        tr, _ = await loop.create_connection(lambda: w, sock=csock, ssl=client_context(),
                                             server_hostname="localhost")
        for _ in range(128):
            tr.write(b"w" * 65536)
        await asyncio.sleep(0.3)
        trace.append(("before the server reads", w.events, got[0]))
        (await server_tr).resume_reading()
        await asyncio.wait_for(w.resumed, 20)
        trace.append(("once it reads", w.events[:2]))
        tr.close()
        trace.append(("server lost", await asyncio.wait_for(server_lost, 20), got[0]))
        server.close()
        await server.wait_closed()

    _run(loop, main())


def scenario_unix_sockets_carry_tls_too(loop, trace):
    async def main():
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "tls.sock")
            server = await asyncio.start_unix_server(_echo_handler, path, ssl=server_context())
            r, w = await asyncio.open_unix_connection(path, ssl=client_context(), server_hostname="localhost")
            trace.append(_session_facts(w.transport))
            w.write(b"over a unix socket" * 1000)
            trace.append(len(await r.readexactly(18000)))
            w.close()
            await w.wait_closed()
            server.close()
            await server.wait_closed()

    _run(loop, main())


TlsLikeAsyncioTest = trace_tests("TlsLikeAsyncioTest", {
    n[len("scenario_"):]: f for n, f in list(globals().items()) if n.startswith("scenario_")})
TlsLikeAsyncioTest.__module__ = __name__  # so setUpModule's certificate is there for it


class TlsRunsInCTest(LoopTest):
    """What only eddyloop has: the session runs in C where the context allows."""

    def test_transports_carry_the_session_and_ssl_object_reads_it(self):
        async def main():
            server, port = await TlsTest.echo_server(self)
            tr, _ = await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=client_context(),
                                                      server_hostname="localhost")
            self.assertIs(type(tr), _core.TCPTransport)
            self.assertTrue(tr._is_tls)
            self.assertIsInstance(tr.get_extra_info("ssl_object"), eddyloop.tls.TLSObject)
            self.assertIs(tr.get_extra_info("ssl_object"), tr.get_extra_info("ssl_object"))
            self.assertEqual(tr.get_write_buffer_limits(), (16384, 65536))
            tr.close()
            # start_tls upgrades eddy's plain transport in place.
            plain = await asyncio.start_server(lambda r, w: w.start_tls(server_context()), "127.0.0.1", 0)
            self.addCleanup(plain.close)
            r, w = await asyncio.open_connection(*plain.sockets[0].getsockname())
            before = w.transport
            await w.start_tls(client_context(), server_hostname="localhost")
            self.assertIs(w.transport, before)
            self.assertTrue(w.transport._is_tls)
            w.close()
            # Unix sockets too.
            with tempfile.TemporaryDirectory() as d:
                server = await asyncio.start_unix_server(lambda r, w: None, os.path.join(d, "s"),
                                                         ssl=server_context())
                self.addCleanup(server.close)
                r, w = await asyncio.open_unix_connection(os.path.join(d, "s"), ssl=client_context(),
                                                          server_hostname="localhost")
                self.assertTrue(w.transport._is_tls)
                w.close()

        self.run_async(main())

    def test_contexts_with_python_callbacks_stay_on_sslproto(self):
        async def main():
            sctx = server_context()
            sctx.sni_callback = lambda *a: None
            server = await self.loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=sctx)
            self.addCleanup(server.close)
            cctx = client_context()
            cctx.keylog_filename = os.devnull
            tr, _ = await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", server.sockets[0].getsockname()[1],
                                                      ssl=cctx, server_hostname="localhost")
            self.assertIsNot(type(tr), _core.TCPTransport)
            tr.close()
            await asyncio.sleep(0.1)

            class OwnObjects(ssl.SSLContext):
                sslobject_class = type("MySSLObject", (ssl.SSLObject,), {})

            mine = OwnObjects(ssl.PROTOCOL_TLS_CLIENT)
            mine.load_verify_locations(os.path.join(_dir.name, "cert.pem"))
            plain_server, port = await TlsTest.echo_server(self)
            tr, _ = await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=mine,
                                                      server_hostname="localhost")
            self.assertEqual(type(tr.get_extra_info("ssl_object")).__name__, "MySSLObject")
            tr.close()
            await asyncio.sleep(0.1)

        self.run_async(main())

    def test_timeouts_are_checked_like_asyncio(self):
        async def main():
            server, port = await TlsTest.echo_server(self)
            for kw in ({"ssl_handshake_timeout": 0}, {"ssl_shutdown_timeout": -1}):
                with self.assertRaises(ValueError):
                    await self.loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=client_context(),
                                                      server_hostname="localhost", **kw)
            gc.collect()  # asyncio leaves the connected socket of such a call to the collector

        self.run_async(main())


if __name__ == "__main__":
    unittest.main()
