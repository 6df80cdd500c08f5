#!/usr/bin/env python3
"""samples/http_server on every backend, against independent clients (Python's
http.client and raw sockets): keep-alive, pipelining, byte-exact files from 0 B to
100 MiB with and without Range, HEAD, If-Modified-Since, and RELIABILITY row 21:
malformed requests (400), oversize headers (431) and bodies (413), path traversal
encoded or not and symlinks out of the root (404, and inotify shows the file
outside was never opened), slowloris closed at the header timeout, idle keep-alive
closed at its timeout, and many idle connections served and reclaimed.

usage: http_server_test.py PROGRAM [unittest args]
EDDY_HTTP_IDLE_CONNS (default 1000) sets the idle-connection count (10000 by hand);
EDDY_BACKEND narrows the run to one backend.
"""
import ctypes
import http.client
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

PROG = None
DEADLINE = 30
HEADER_TIMEOUT = 0.5
IDLE_TIMEOUT = 1.0


def backends():
    only = os.environ.get("EDDY_BACKEND", "")
    return [b for b in ("io_uring", "epoll", "libuv") if not only or only == b]


class inotify:
    """Counts opens and reads of one file (IN_OPEN | IN_ACCESS)."""

    def __init__(self, path):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, path.encode(), 0x20 | 0x01) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def events(self):
        try:
            return len(os.read(self.fd, 65536))
        except BlockingIOError:
            return 0

    def close(self):
        os.close(self.fd)


class server:
    def __init__(self, backend, root, *extra):
        cmd = [PROG, "--listen", "127.0.0.1:0", "--root", root, "--backend", backend,
               "--header-timeout", str(HEADER_TIMEOUT), "--idle-timeout", str(IDLE_TIMEOUT),
               "--max-header-bytes", "4096", "--max-body-bytes", "65536"] + list(extra)
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.p.stdout], [], [], DEADLINE)
        line = self.p.stdout.readline() if ready else ""
        m = re.match(r"listening on (\S+) (\d+)", line)
        if not m:
            self.p.kill()
            raise RuntimeError("http_server did not start: %r %r" % (line, self.p.stderr.read()))
        self.port = int(m.group(2))

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise
        err = self.p.stderr.read()
        self.p.stdout.close()
        self.p.stderr.close()
        return rc, err


def raw(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    return s


def read_response(sock, buf=b""):
    """One response from a raw socket: (status, headers dict, body, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed before a full head: %r" % buf)
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed mid-body")
        buf += chunk
    return status, headers, buf[:n], buf[n:]


def closed_within(sock, seconds):
    """True if the peer closes (EOF or reset) within `seconds`, reading and dropping data."""
    sock.settimeout(seconds)
    end = time.time() + seconds
    try:
        while time.time() < end:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


class http_server_tests:
    """Mixed into one TestCase per backend (see the bottom of the file)."""
    backend = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="eddy_http_test_")
        cls.root = os.path.join(cls.tmp, "www")
        os.mkdir(cls.root)
        os.mkdir(os.path.join(cls.root, "sub"))
        cls.files = {}
        rnd = random.Random(23)
        for name, size in [("empty.bin", 0), ("one.txt", 1), ("f16k.bin", 16384),
                           ("f64k1.bin", 65537), ("f1m.bin", 1 << 20), ("sub/page.html", 300),
                           ("f100m.bin", 100 << 20)]:
            data = rnd.randbytes(size) if size < (1 << 20) else (rnd.randbytes(1 << 20) * (size >> 20))
            with open(os.path.join(cls.root, name), "wb") as f:
                f.write(data)
            cls.files[name] = data
        with open(os.path.join(cls.root, "index.html"), "wb") as f:
            f.write(b"<p>index</p>")
        cls.secret = os.path.join(cls.tmp, "secret")
        with open(cls.secret, "w") as f:
            f.write("outside the root")
        os.symlink("../secret", os.path.join(cls.root, "link_out"))
        os.symlink(cls.secret, os.path.join(cls.root, "abs_out"))
        os.symlink("one.txt", os.path.join(cls.root, "link_in"))
        cls.srv = server(cls.backend, cls.root)

    @classmethod
    def tearDownClass(cls):
        rc, err = cls.srv.stop()
        shutil.rmtree(cls.tmp)
        if rc != 0 or "connection:" in err:
            raise AssertionError("server exit %d, stderr %r" % (rc, err))

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=DEADLINE)

    def test_plaintext_over_one_keep_alive_connection(self):
        c = self.conn()
        for _ in range(20):
            c.request("GET", "/plaintext")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("Content-Type"), "text/plain")
            self.assertEqual(r.read(), b"Hello, World!")
        c.close()

    def test_pipelined_requests_are_answered_in_order(self):
        s = raw(self.srv.port)
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /one.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /f16k.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /sub/page.html HTTP/1.1\r\nHost: x\r\n\r\n")
        st, h, body, rest = read_response(s)
        self.assertEqual((st, body), (200, b"Hello, World!"))
        st, h, body, rest = read_response(s, rest)
        self.assertEqual((st, body), (200, self.files["one.txt"]))
        # HEAD: the length of the file, no body
        head, rest = rest.split(b"\r\n\r\n", 1) if b"\r\n\r\n" in rest else (None, rest)
        if head is None:
            while b"\r\n\r\n" not in rest:
                rest += s.recv(65536)
            head, rest = rest.split(b"\r\n\r\n", 1)
        self.assertIn(b"Content-Length: 16384", head)
        st, h, body, rest = read_response(s, rest)
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "text/html; charset=utf-8")
        self.assertEqual(body, self.files["sub/page.html"])
        s.close()

    def test_files_from_0_bytes_to_100_mib_arrive_byte_exact(self):
        c = self.conn()
        for name, data in self.files.items():
            c.request("GET", "/" + name)
            r = c.getresponse()
            self.assertEqual(r.status, 200, name)
            self.assertEqual(int(r.getheader("Content-Length")), len(data))
            self.assertTrue(r.read() == data, name)
        c.request("GET", "/")
        self.assertEqual(c.getresponse().read(), b"<p>index</p>")
        c.request("GET", "/link_in")  # a symlink inside the root is followed
        self.assertEqual(c.getresponse().read(), self.files["one.txt"])
        c.close()

    def test_ranges_arrive_byte_exact(self):
        c = self.conn()
        rnd = random.Random(5)
        for name in ("f16k.bin", "f64k1.bin", "f1m.bin", "f100m.bin"):
            data = self.files[name]
            cases = [(0, 0), (len(data) - 1, len(data) - 1)]
            for _ in range(4):
                a = rnd.randrange(len(data))
                cases.append((a, rnd.randrange(a, len(data))))
            for a, b in cases:
                c.request("GET", "/" + name, headers={"Range": "bytes=%d-%d" % (a, b)})
                r = c.getresponse()
                self.assertEqual(r.status, 206)
                self.assertEqual(r.getheader("Content-Range"), "bytes %d-%d/%d" % (a, b, len(data)))
                self.assertTrue(r.read() == data[a:b + 1], (name, a, b))
            c.request("GET", "/" + name, headers={"Range": "bytes=-100"})
            r = c.getresponse()
            self.assertEqual((r.status, r.read()), (206, data[-100:]))
            c.request("GET", "/" + name, headers={"Range": "bytes=%d-" % len(data)})
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 416)
        c.close()

    def test_if_modified_since_and_head(self):
        c = self.conn()
        c.request("HEAD", "/f16k.bin")
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (200, b""))
        lm = r.getheader("Last-Modified")
        self.assertIsNotNone(lm)
        c.request("GET", "/f16k.bin", headers={"If-Modified-Since": lm})
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (304, b""))
        c.request("GET", "/f16k.bin", headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        r.read()
        c.request("POST", "/f16k.bin", body=b"x" * 10)
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 405)
        c.close()

    def expect_status_and_close(self, payload, status):
        s = raw(self.srv.port)
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        st, h, body, _ = read_response(s)
        self.assertEqual(st, status, payload[:80])
        self.assertEqual(h.get("connection"), "close")
        self.assertTrue(closed_within(s, 5))
        s.close()

    def test_malformed_requests_get_400(self):
        for bad in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
                    b"GET / HTTP/9.9x\r\n\r\n", b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
                    b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            self.expect_status_and_close(bad, 400)

    def test_oversize_headers_get_431(self):
        self.expect_status_and_close(
            b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n", 431)
        self.expect_status_and_close(b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\n\r\n", 431)
        many = b"".join(b"X-%d: v\r\n" % i for i in range(1000))
        self.expect_status_and_close(b"GET / HTTP/1.1\r\n" + many + b"\r\n", 431)

    def test_oversize_bodies_get_413(self):
        self.expect_status_and_close(
            b"POST / HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000, 413)
        chunk = b"%x\r\n%s\r\n" % (40000, b"y" * 40000)
        self.expect_status_and_close(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2, 413)

    def test_path_traversal_gets_404_and_never_opens_the_file(self):
        watch = inotify(self.secret)
        try:
            s = raw(self.srv.port)
            for target in (b"/../secret", b"/%2e%2e/secret", b"/%2E%2E/secret", b"/sub/../../secret",
                           b"/sub/%2e%2e/%2e%2e/secret", b"/%2e%2e%2fsecret", b"/..%2fsecret",
                           b"/link_out", b"/abs_out", b"/./one.txt", b"/sub/./page.html",
                           b"/one.txt%00.html", b"/%", b"/%zz", b"//etc/passwd",
                           b"/..\\secret", b"http://x/../secret"):
                s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                st, _, body, rest = read_response(s)
                self.assertEqual(st, 404, target)
                self.assertEqual(rest, b"")
            s.close()
            self.assertEqual(watch.events(), 0, "the file outside the root was opened")
        finally:
            watch.close()

    def test_slowloris_is_closed_at_the_header_timeout(self):
        slow = raw(self.srv.port)
        slow.sendall(b"GET /plaintext HTTP/1.1\r\n")
        start = time.time()
        closed = False
        # A header byte every 100 ms for up to 5 s: each byte is progress, but the
        # headers are never complete; the deadline must not move.
        while time.time() - start < 5:
            try:
                slow.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_within(slow, 0.1):
                closed = True
                break
        elapsed = time.time() - start
        slow.close()
        self.assertTrue(closed, "a trickling client was never closed")
        self.assertLess(elapsed, HEADER_TIMEOUT + 2.5)
        # Real clients were served meanwhile and still are.
        c = self.conn()
        c.request("GET", "/plaintext")
        self.assertEqual(c.getresponse().read(), b"Hello, World!")
        c.close()

    def test_idle_keep_alive_is_closed_at_its_timeout(self):
        s = raw(self.srv.port)
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, _, _ = read_response(s)
        self.assertEqual(st, 200)
        start = time.time()
        self.assertTrue(closed_within(s, IDLE_TIMEOUT + 3))
        self.assertGreater(time.time() - start, IDLE_TIMEOUT * 0.5)
        s.close()

    def test_connections_over_the_limit_are_closed_at_once(self):
        srv = server(self.backend, self.root, "--max-connections", "5")
        try:
            held = [raw(srv.port) for _ in range(5)]
            for s in held:  # each is served: the five are inside the limit
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(read_response(s)[0], 200)
            extra = raw(srv.port)
            self.assertTrue(closed_within(extra, 5), "a sixth connection was kept")
            extra.close()
            held.pop().close()
            for _ in range(100):  # the server notices the close, then has room again
                again = raw(srv.port)
                try:
                    again.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                    if read_response(again)[0] == 200:
                        break
                except (EOFError, ConnectionResetError, BrokenPipeError):
                    time.sleep(0.02)
                finally:
                    again.close()
            else:
                self.fail("no room after a connection closed")
            for s in held:
                s.close()
        finally:
            rc, err = srv.stop()
            self.assertEqual(rc, 0, err)

    def test_sigterm_answers_requests_in_progress_and_closes_idle_connections(self):
        # Graceful shutdown (issue 24, eddy::graceful_shutdown): the listener closes,
        # an idle keep-alive connection ends at once, a request still arriving is
        # answered with Connection: close, and the server exits 0 well before --grace.
        srv = server(self.backend, self.root, "--grace", "20")
        try:
            idle = raw(srv.port)
            idle.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            st, h, body, _ = read_response(idle)
            self.assertEqual((st, body), (200, b"Hello, World!"))
            slow = raw(srv.port)
            slow.sendall(b"GET /one.txt HTTP/1.1\r\nHost: x\r\n")  # headers not finished
            time.sleep(0.2)
            t0 = time.time()
            srv.p.send_signal(signal.SIGTERM)
            self.assertTrue(closed_within(idle, 5), "the idle connection stayed open")
            slow.sendall(b"\r\n")
            st, h, body, rest = read_response(slow)
            self.assertEqual((st, body), (200, self.files["one.txt"]))
            self.assertEqual(h.get("connection", "").lower(), "close")
            self.assertTrue(closed_within(slow, 5), "the answered connection stayed open")
            rc = srv.p.wait(timeout=DEADLINE)
            self.assertLess(time.time() - t0, 10, "waited for the grace period")
            err = srv.p.stderr.read()
            self.assertEqual(rc, 0, err)
            self.assertIn("stopped accepting", err)
            self.assertRegex(err, r"2 connection\(s\) finished, 0 closed")
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
        finally:
            if srv.p.poll() is None:
                srv.p.kill()
                srv.p.wait()
            srv.p.stdout.close()
            srv.p.stderr.close()

    def test_many_idle_keep_alive_connections_are_served_and_reclaimed(self):
        n = int(os.environ.get("EDDY_HTTP_IDLE_CONNS", "1000"))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < n + 100:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
        socks = []
        try:
            for _ in range(n):
                s = socket.socket()
                s.setblocking(True)
                s.settimeout(DEADLINE)
                s.connect(("127.0.0.1", self.srv.port))
                socks.append(s)
            for s in socks:
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            served = 0
            for s in socks:
                st, _, body, _ = read_response(s)
                served += st == 200 and body == b"Hello, World!"
            self.assertEqual(served, n)
            # All idle now: every one is closed by the idle timeout.
            deadline = time.time() + IDLE_TIMEOUT + 10
            by_fd = {s.fileno(): s for s in socks}
            poller = select.poll()  # select() stops at fd 1024
            for fd in by_fd:
                poller.register(fd, select.POLLIN)
            open_ = set(by_fd)
            while open_ and time.time() < deadline:
                for fd, _ in poller.poll(500):
                    try:
                        gone = not by_fd[fd].recv(1)
                    except ConnectionResetError:
                        gone = True
                    if gone:
                        open_.discard(fd)
                        poller.unregister(fd)
            self.assertEqual(len(open_), 0, "%d idle connections never closed" % len(open_))
        finally:
            for s in socks:
                s.close()
        c = self.conn()
        c.request("GET", "/plaintext")
        self.assertEqual(c.getresponse().read(), b"Hello, World!")
        c.close()


def main():
    global PROG
    PROG = sys.argv[1]
    del sys.argv[1]
    g = globals()
    for b in backends():
        g["http_server_" + b] = type("http_server_" + b, (http_server_tests, unittest.TestCase),
                                     {"backend": b})
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
