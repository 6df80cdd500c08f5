#!/usr/bin/env python3
"""Runs issue 13's three user programs (samples/chat_server, parallel_hasher,
http_client) the way a user would, and checks what they do.

usage: samples_test.py chat|hasher|http PROGRAM
"""
import http.server
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

DEADLINE = 60  # seconds for any one wait; the steps themselves take milliseconds


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


# ---- chat_server ---------------------------------------------------------------

class line_client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.buf = b""

    def name(self):
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def send(self, text):
        self.sock.sendall(text.encode())

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("connection closed; had " + repr(self.buf))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def wait_for(self, want):
        """Lines until one equals `want` (joins and leaves may come first)."""
        for _ in range(100):
            got = self.line()
            if got == want:
                return
        fail(f"never saw {want!r}")

    def closed(self):
        """True once the server closed this connection (EOF or reset)."""
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True


def start_listening(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([p.stdout], [], [], DEADLINE)
    line = p.stdout.readline() if ready else ""
    m = re.match(r"listening on (\S+) (\d+)", line)
    if not m:
        p.kill()
        fail(f"{cmd[0]} did not say where it listens: {line!r} {p.stderr.read()!r}")
    return p, int(m.group(2))


def test_chat(prog):
    server, port = start_listening([prog, "--port", "0", "--max-line", "64"])
    try:
        a, b, c = line_client(port), line_client(port), line_client(port)
        for cl in (a, b, c):
            # Its own address, from accept_with_peer.
            cl.wait_for("welcome " + cl.name())
        a.send("hello room\n")
        b.wait_for(a.name() + ": hello room")
        c.wait_for(a.name() + ": hello room")
        print("ok: a line reaches every other client, each greeted with its own address")

        # One client breaks the rules (a line over --max-line): it alone is ended.
        c.send("x" * 500 + "\n")
        if not c.closed():
            fail("the client with the over-long line was not disconnected")
        b.send("still here\n")
        a.wait_for(b.name() + ": still here")
        print("ok: one client's failure ends that client only; the others go on")

        server.send_signal(signal.SIGINT)
        for cl in (a, b):
            cl.wait_for("server shutting down")
        out, err = server.communicate(timeout=DEADLINE)
        if server.returncode != 0 or "stopped" not in out:
            fail(f"after SIGINT: exit {server.returncode}, out {out!r}, err {err!r}")
        if "a client ended with" not in err:
            fail(f"the failed client was not logged: {err!r}")
        print("ok: SIGINT says goodbye to every client and exits 0")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# ---- parallel_hasher -----------------------------------------------------------

def fnv1a(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def test_hasher(prog):
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, size in enumerate([0, 1, 1000, 70_000, 300_000]):
            path = os.path.join(d, f"f{i}")
            with open(path, "wb") as f:
                f.write(bytes((j * 7 + i) % 251 for j in range(size)))
            files.append(path)
        want = "".join(f"{fnv1a(open(p, 'rb').read())}  {p}\n" for p in files)
        for extra in ([], ["--processes"], ["--jobs", "1"]):
            r = subprocess.run([prog, *extra, *files], capture_output=True, text=True, timeout=DEADLINE)
            if r.returncode != 0 or r.stdout != want:
                fail(f"{extra}: exit {r.returncode}\ngot:\n{r.stdout}\nwant:\n{want}\nerr: {r.stderr}")
            print(f"ok: {' '.join(extra) or 'threads'}: every hash right, in the order given")

        missing = os.path.join(d, "missing")
        r = subprocess.run([prog, files[2], missing, files[3]], capture_output=True, text=True, timeout=DEADLINE)
        lines = r.stdout.splitlines()
        if r.returncode != 1 or len(lines) != 2 or missing not in r.stderr:
            fail(f"a missing file: exit {r.returncode}, out {r.stdout!r}, err {r.stderr!r}")
        print("ok: an unreadable file is reported and the others are still hashed")

        r = subprocess.run([prog, "--jobs", "0", files[0]], capture_output=True, text=True, timeout=DEADLINE)
        if r.returncode != 2 or "--jobs must be" not in r.stderr:
            fail(f"--jobs 0: exit {r.returncode}, err {r.stderr!r}")
        print("ok: a bad option is a clear error (exit 2)")


# ---- http_client ---------------------------------------------------------------

BODY = b"hello from the test server\n" * 10


class handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (BODY[:100], BODY[100:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/missing":
            self.send_error(404)
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

    def log_message(self, *args):
        pass


class server(http.server.ThreadingHTTPServer):
    request_queue_size = 512  # 200 clients connect at once
    daemon_threads = True


def test_http(prog):
    srv = server(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    try:
        def run(*args):
            return subprocess.run([prog, *args], capture_output=True, text=True, timeout=DEADLINE * 2)

        r = run("--requests", "200", "--concurrency", "200", f"http://127.0.0.1:{port}/")
        want = f"200 requests: 200 ok, 0 failed; status 200 x200; {200 * len(BODY)} body bytes\n"
        if r.returncode != 0 or r.stdout != want:
            fail(f"200 fetches: exit {r.returncode}, out {r.stdout!r}, want {want!r}, err {r.stderr!r}")
        print("ok: 200 concurrent fetches, every body complete (Content-Length)")

        r = run("--requests", "20", f"http://localhost:{port}/chunked")
        if r.returncode != 0 or f"20 ok, 0 failed; status 200 x20; {20 * len(BODY)} body bytes" not in r.stdout:
            fail(f"chunked: exit {r.returncode}, out {r.stdout!r}, err {r.stderr!r}")
        print("ok: chunked bodies, host name resolved")

        r = run("--requests", "3", f"http://127.0.0.1:{port}/missing")
        if r.returncode != 1 or "status 404 x3" not in r.stdout:
            fail(f"404: exit {r.returncode}, out {r.stdout!r}")
        print("ok: a 404 is counted and the exit status says so")
    finally:
        srv.shutdown()
        srv.server_close()

    # Nobody listening any more: every fetch fails, each is counted, none hangs.
    r = subprocess.run([prog, "--requests", "5", f"http://127.0.0.1:{port}/"], capture_output=True,
                       text=True, timeout=DEADLINE)
    if r.returncode != 1 or "0 ok, 5 failed" not in r.stdout or "refused" not in r.stderr:
        fail(f"refused: exit {r.returncode}, out {r.stdout!r}, err {r.stderr!r}")
    print("ok: connection refused is a counted failure with a clear message")

    r = subprocess.run([prog, "--concurrency", "0", "http://x/"], capture_output=True, text=True, timeout=DEADLINE)
    if r.returncode != 2 or "--concurrency must be" not in r.stderr:
        fail(f"--concurrency 0: exit {r.returncode}, err {r.stderr!r}")
    print("ok: a bad option is a clear error (exit 2)")


if __name__ == "__main__":
    {"chat": test_chat, "hasher": test_hasher, "http": test_http}[sys.argv[1]](sys.argv[2])
