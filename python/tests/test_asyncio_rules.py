"""Where asyncio promises an order or a "never after", eddyloop keeps it. Each
scenario runs on asyncio's own loop (the reference) and on eddyloop, and the two
traces must be equal: SystemExit/KeyboardInterrupt from every kind of callback,
Handle.cancel(), call_later with 0 and negative delays, stop() inside a
callback, close() with callbacks pending, call_soon_threadsafe after close()."""

import asyncio
import socket
import threading
import unittest

from support import trace_tests

FATAL = (SystemExit, KeyboardInterrupt)


def run_fatal(loop, trace, start):
    """Runs the loop until `start(raiser)` makes a callback raise each of FATAL,
    then once more to see what was left queued."""
    for exc in FATAL:
        def raiser(*_):
            trace.append(f"raise {exc.__name__}")
            raise exc()
        start(raiser)
        try:
            loop.run_forever()
            trace.append("returned")
        except FATAL as e:
            trace.append(f"caught {type(e).__name__}")
        trace.append(f"running={loop.is_running()}")
        loop.call_soon(loop.stop)
        loop.run_forever()
        trace.append("second run done")


def fatal_call_soon(loop, trace):
    def start(raiser):
        loop.call_soon(raiser)
        loop.call_soon(trace.append, "queued behind")
    run_fatal(loop, trace, start)


def fatal_call_later(loop, trace):
    def start(raiser):
        loop.call_later(0.001, raiser)
        loop.call_later(0.001, trace.append, "same deadline")
        loop.call_later(0.2, trace.append, "later timer")
    run_fatal(loop, trace, start)


def fatal_call_at_negative(loop, trace):
    def start(raiser):
        loop.call_at(loop.time() - 1, raiser)
        loop.call_later(-0.5, trace.append, "past timer")
    run_fatal(loop, trace, start)


def fatal_threadsafe(loop, trace):
    def start(raiser):
        threading.Thread(target=loop.call_soon_threadsafe, args=(raiser,)).start()
    run_fatal(loop, trace, start)


def fatal_reader(loop, trace):
    r, w = socket.socketpair()
    r.setblocking(False)
    try:
        def start(raiser):
            def cb():
                r.recv(10)
                loop.remove_reader(r)
                raiser()
            loop.add_reader(r, cb)
            w.send(b"x")
        run_fatal(loop, trace, start)
    finally:
        r.close()
        w.close()


def fatal_writer(loop, trace):
    r, w = socket.socketpair()
    w.setblocking(False)
    try:
        def start(raiser):
            def cb():
                loop.remove_writer(w)
                raiser()
            loop.add_writer(w, cb)
        run_fatal(loop, trace, start)
    finally:
        r.close()
        w.close()


def fatal_protocol(method):
    def scenario(loop, trace):
        r, w = socket.socketpair()
        holder = {}

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                holder["t"] = transport
                if method == "connection_made":
                    holder.pop("raiser")()

            def data_received(self, data):
                trace.append(f"data {data!r}")
                if method == "data_received" and "raiser" in holder:
                    holder.pop("raiser")()

            def eof_received(self):
                trace.append("eof")
                if method == "eof_received" and "raiser" in holder:
                    holder.pop("raiser")()

        try:
            def start(raiser):
                holder["raiser"] = raiser
                if "t" not in holder:
                    loop.call_soon(lambda: loop.create_task(
                        loop.connect_accepted_socket(P, r)))
                if method == "data_received":
                    w.send(b"ping")
                elif method == "eof_received":
                    w.shutdown(socket.SHUT_WR)
            start_first = start
            for exc in FATAL:
                if method in ("connection_made", "eof_received") and exc is KeyboardInterrupt:
                    break  # these fire once per connection
                def raiser(*_, exc=exc):
                    trace.append(f"raise {exc.__name__}")
                    raise exc()
                start_first(raiser)
                try:
                    loop.run_forever()
                except FATAL as e:
                    trace.append(f"caught {type(e).__name__}")
                # asyncio leaves the connection open: it still reads.
                loop.call_later(0.05, loop.stop)
                loop.run_forever()
                trace.append(f"closing={holder['t'].is_closing()}")
        finally:
            if "t" in holder:
                holder["t"].close()
                loop.call_later(0.01, loop.stop)
                loop.run_forever()
            r.close()
            w.close()
    return scenario


def stop_inside_a_callback(loop, trace):
    def a():
        trace.append("a")
        loop.stop()
        loop.call_soon(trace.append, "queued by a")
    loop.call_soon(a)
    loop.call_soon(trace.append, "b")
    loop.run_forever()
    trace.append("returned")
    loop.call_soon(loop.stop)
    loop.run_forever()
    trace.append("second run done")
    loop.stop()
    loop.call_soon(trace.append, "one iteration")
    loop.run_forever()
    trace.append("stop before run done")


def handle_cancel(loop, trace):
    h1 = loop.call_soon(trace.append, "cancelled before the run")
    h1.cancel()
    h3 = None

    def cancel_next():
        trace.append("cancels the next one")
        h3.cancel()
        t.cancel()
    loop.call_soon(cancel_next)
    h3 = loop.call_soon(trace.append, "cancelled by an earlier callback")
    t = loop.call_later(0, trace.append, "timer cancelled by an earlier callback")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    trace.append((h1.cancelled(), h3.cancelled(), t.cancelled()))


def zero_and_negative_delays(loop, trace):
    loop.call_later(0, trace.append, "later 0")
    loop.call_later(-1, trace.append, "later -1")
    loop.call_soon(trace.append, "soon")
    loop.call_later(-5, trace.append, "later -5")
    loop.call_at(loop.time() - 10, trace.append, "at -10")
    loop.call_later(0, trace.append, "later 0 again")
    loop.call_later(0.0007, trace.append, "later 0.7 ms")
    loop.call_later(0.0003, trace.append, "later 0.3 ms")
    loop.call_later(0.05, loop.stop)
    loop.run_forever()


def close_with_callbacks_pending(loop, trace):
    loop.call_soon(trace.append, "soon")
    loop.call_later(0, trace.append, "timer")
    h = loop.call_later(10, trace.append, "far timer")
    loop.close()
    trace.append("closed")
    for call in (lambda: loop.call_soon(trace.append, 1),
                 lambda: loop.call_later(0, trace.append, 1),
                 lambda: loop.call_soon_threadsafe(trace.append, 1),
                 loop.run_forever):
        try:
            call()
            trace.append("accepted")
        except RuntimeError as e:
            trace.append(str(e))
    errors = []

    def from_thread():
        try:
            loop.call_soon_threadsafe(trace.append, 1)
        except RuntimeError as e:
            errors.append(str(e))
    th = threading.Thread(target=from_thread)
    th.start()
    th.join()
    trace.append(errors)
    h.cancel()


def exception_contexts(loop, trace):
    # Not fatal: to the exception handler with asyncio's message and handle.
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))
    r, w = socket.socketpair()
    r.setblocking(False)

    def reader(tag):
        r.recv(10)
        if tag == "removes itself":
            loop.remove_reader(r)
        loop.call_soon(loop.stop)
        raise ValueError(tag)

    def cb(x):
        raise ValueError(x)
    try:
        for tag in ("stays", "removes itself"):
            loop.add_reader(r, reader, tag)
            w.send(b"x")
            loop.run_forever()
            loop.remove_reader(r)
        h = loop.call_soon(cb, 1)
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        r.close()
        w.close()
    for ctx in seen:
        trace.append((ctx["message"], repr(ctx["exception"]), sorted(ctx),
                      ctx["handle"].cancelled(), ctx["handle"] is h))


def set_protocol_inside_callbacks(loop, trace):
    # A BufferedProtocol hands the transport to a plain Protocol from inside
    # buffer_updated (as start_tls does), dropping the transport's references to
    # itself mid-call: the rest of the bytes go to the new protocol, in order.
    r, w = socket.socketpair()
    got_b = bytearray()
    done = loop.create_future()

    class B(asyncio.Protocol):
        def data_received(self, data):
            got_b.extend(data)
            if len(got_b) >= 90 and not done.done():
                done.set_result(None)

    class A(asyncio.BufferedProtocol):
        def connection_made(self, transport):
            self.transport = transport
            self.buf = bytearray(10)

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, n):
            trace.append(("A", bytes(self.buf[:n])))
            self.transport.set_protocol(B())
            trace.append(("swapped", type(self.transport.get_protocol()).__name__))

    async def main():
        transport, _ = await loop.connect_accepted_socket(A, r)
        w.send(bytes(range(100)))
        await asyncio.wait_for(done, 5)
        trace.append(("B", bytes(got_b)))
        transport.close()
        await asyncio.sleep(0.01)
    try:
        loop.run_until_complete(main())
    finally:
        w.close()


SCENARIOS = {
    "fatal_call_soon": fatal_call_soon,
    "fatal_call_later": fatal_call_later,
    "fatal_call_at_negative": fatal_call_at_negative,
    "fatal_call_soon_threadsafe": fatal_threadsafe,
    "fatal_reader": fatal_reader,
    "fatal_writer": fatal_writer,
    "fatal_connection_made": fatal_protocol("connection_made"),
    "fatal_data_received": fatal_protocol("data_received"),
    "fatal_eof_received": fatal_protocol("eof_received"),
    "stop_inside_a_callback": stop_inside_a_callback,
    "handle_cancel": handle_cancel,
    "zero_and_negative_delays": zero_and_negative_delays,
    "close_with_callbacks_pending": close_with_callbacks_pending,
    "exception_contexts": exception_contexts,
    "set_protocol_inside_callbacks": set_protocol_inside_callbacks,
}


AsyncioRulesTest = trace_tests("AsyncioRulesTest", SCENARIOS)


if __name__ == "__main__":
    unittest.main()
