"""loop.sendfile() for eddyloop's stream transports: a plain copy (asyncio's
fallback), reading the file in the default executor and writing through the
transport with its flow control. eddy has no native sendfile yet."""

import asyncio

_BLOCK = 256 * 1024


class _Drain(asyncio.Protocol):
    """Stands in for the transport's protocol during the copy, so the copy sees
    pause_writing/resume_writing; hands the transport back afterwards."""

    def __init__(self, loop, transport):
        self._loop = loop
        self._transport = transport
        self._proto = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        self._ready = None
        if transport._protocol_paused:
            self._ready = loop.create_future()
        transport.pause_reading()
        transport.set_protocol(self)

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        if self._ready is not None:
            await self._ready

    def pause_writing(self):
        if self._ready is None:
            self._ready = self._loop.create_future()

    def resume_writing(self):
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        self._ready = None

    def data_received(self, data):
        raise RuntimeError("Invalid state: connection should have been established already.")

    def eof_received(self):
        raise RuntimeError("Invalid state: connection should have been established already.")

    def connection_lost(self, exc):
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(exc or ConnectionError("Connection is closed by peer"))
        self._proto.connection_lost(exc)

    def restore(self):
        self._transport.set_protocol(self._proto)
        if self._resume_reading:
            self._transport.resume_reading()
        if self._ready is not None:
            self._ready.cancel()
            if not self._transport._protocol_paused:
                self._proto.resume_writing()


async def sendfile(loop, transport, file, offset=0, count=None, *, fallback=True):
    if transport.is_closing():
        raise RuntimeError("Transport is closing")
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not fallback:
        raise asyncio.SendfileNotAvailableError("eddyloop has no native sendfile; use fallback=True")
    if offset:
        file.seek(offset)
    buf = bytearray(min(count, _BLOCK) if count else _BLOCK)
    total = 0
    drain = _Drain(loop, transport)
    try:
        while True:
            n = min(count - total, len(buf)) if count else len(buf)
            if n <= 0:
                return total
            view = memoryview(buf)[:n]
            got = await loop.run_in_executor(None, file.readinto, view)
            if not got:
                return total
            await drain.drain()
            transport.write(view[:got])
            total += got
    finally:
        if total > 0 and hasattr(file, "seek"):
            file.seek(offset + total)
        await drain.drain()
        drain.restore()
