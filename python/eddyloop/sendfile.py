"""loop.sendfile() for eddyloop's stream transports.

Native path (a regular file with a descriptor): the transport's protocol is set
aside and reading paused, as asyncio does; once everything the transport had
queued is on the wire (its write-buffer limits are 0 meanwhile, so the transport
says so with resume_writing), os.sendfile(2) moves the file's bytes from the page
cache to the socket inside the kernel, waiting through eddy for the socket to
take more when it is full. No byte of the file passes through Python.

Copy path (a TLS transport, a file without a descriptor, not a regular file, or a kernel that
refuses sendfile for it), when fallback=True: read in the default executor,
write through the transport with its flow control (asyncio's fallback). With
fallback=False those raise asyncio.SendfileNotAvailableError instead.
"""

import asyncio
import errno
import io
import os
import stat

_BLOCK = 256 * 1024
_MAX_CHUNK = 1 << 30  # per os.sendfile call; the kernel moves at most ~2 GiB anyway

# First-call errors that mean "sendfile cannot do this pair", not "the connection
# failed": take the copy path.
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSOCK, errno.ESPIPE}
_CONNECTION = {errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN}


class _NotAvailable(Exception):
    pass


class _Drain(asyncio.Protocol):
    """Stands in for the transport's protocol during sendfile: sees
    pause_writing/resume_writing, and hands the transport back afterwards with
    the application's protocol told of any change in between."""

    def __init__(self, loop, transport):
        self._loop = loop
        self._transport = transport
        self._proto = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        self._was_paused = transport._protocol_paused
        self._limits = None
        self._ready = loop.create_future() if self._was_paused else None
        self._waiter = None  # the native path's wait for room in the socket
        self.lost = False
        self.sent = 0  # bytes of the file handed to the socket so far
        transport.pause_reading()
        transport.set_protocol(self)

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        if self._ready is not None:
            await self._ready

    async def flushed(self):
        """Returns once every byte queued on the transport has been sent."""
        low, high = self._transport.get_write_buffer_limits()
        self._limits = (high, low)
        self._transport.set_write_buffer_limits(high=0, low=0)
        await self.drain()

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
        # The transport closed (abort(), close() or the peer): the socket's fd is
        # closed or about to be, so a wait on it might never end. End it here.
        self.lost = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(exc or ConnectionError("Connection is closed by peer"))
        self._proto.connection_lost(exc)

    def restore_limits(self):
        """Gives the transport back the write-buffer limits flushed() set to 0."""
        if self._limits is not None and not self._transport.is_closing():
            self._transport.set_write_buffer_limits(high=self._limits[0], low=self._limits[1])
        self._limits = None

    def restore(self):
        t = self._transport
        self.restore_limits()
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        paused = t._protocol_paused
        t.set_protocol(self._proto)
        if t.is_closing():
            return
        if self._was_paused and not paused:
            self._proto.resume_writing()
        elif paused and not self._was_paused:
            self._proto.pause_writing()
        if self._resume_reading:
            t.resume_reading()


def _check_args(transport, file, offset, count):
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
    if offset and not _seekable(file):
        raise ValueError(f"offset {offset} needs a seekable file, got {file!r}")


def _seekable(file):
    try:
        return bool(file.seekable())
    except (AttributeError, ValueError, OSError):
        return False


def _regular_fileno(file):
    """The file's descriptor if it is a regular file, else None."""
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        return None
    try:
        return fileno if stat.S_ISREG(os.fstat(fileno).st_mode) else None
    except OSError:
        return None


async def _native(loop, transport, drain, fileno, offset, count):
    await drain.flushed()
    total = 0
    while count is None or total < count:
        want = _MAX_CHUNK if count is None else min(count - total, _MAX_CHUNK)
        # Checked right before each call, with no await in between: a transport
        # that is closing may have closed (and the number been reused).
        fd = transport._sendfile_fd()
        if fd < 0:
            raise ConnectionError("Connection closed")
        try:
            sent = os.sendfile(fd, fileno, offset + total, want)
        except (BlockingIOError, InterruptedError):
            await _room(loop, drain, fd)
            continue
        except OSError as e:
            if total == 0 and e.errno in _UNSUPPORTED:
                raise _NotAvailable(str(e)) from e
            if e.errno in _CONNECTION:
                raise ConnectionError(f"sendfile: {e.strerror}") from e
            raise
        if sent == 0:
            break  # end of file
        total += sent
        drain.sent = total
    return total


async def _room(loop, drain, fd):
    """Waits until the socket takes more; ConnectionError if the transport closes
    meanwhile (connection_lost cancels the wait)."""
    drain._waiter = loop._wait_fd(fd, True)
    try:
        await drain._waiter
    except asyncio.CancelledError:
        # Ours, unless the task itself is being cancelled as well.
        if drain.lost and not asyncio.current_task().cancelling():
            raise ConnectionError("Connection closed during sendfile") from None
        raise
    finally:
        drain._waiter = None


async def _copy(loop, transport, drain, file, offset, count):
    if offset:
        file.seek(offset)
    buf = bytearray(min(count, _BLOCK) if count else _BLOCK)
    total = 0
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
        drain.sent = total


async def sendfile(loop, transport, file, offset=0, count=None, *, fallback=True):
    _check_args(transport, file, offset, count)
    if transport._is_tls:
        # os.sendfile would put the file on the wire unencrypted: TLS copies
        # through the transport, and says so as asyncio does without fallback.
        if not fallback:
            raise RuntimeError(f"fallback is disabled and native sendfile is not supported for transport "
                               f"{transport!r}")
        fileno = None
    else:
        fileno = _regular_fileno(file)
    if fileno is None and not fallback:
        raise asyncio.SendfileNotAvailableError(
            f"sendfile needs a regular file with a descriptor, got {file!r}")
    drain = _Drain(loop, transport)
    try:
        if fileno is not None:
            # As asyncio's native path: the application's write() raises
            # RuntimeError until it ends (its bytes would land inside the file's).
            transport._sendfile_busy = True
            try:
                return await _native(loop, transport, drain, fileno, offset, count)
            except _NotAvailable as e:
                if not fallback:
                    raise asyncio.SendfileNotAvailableError(f"os.sendfile refused: {e}") from None
                drain.restore_limits()  # the copy goes through the transport's queue
            finally:
                transport._sendfile_busy = False
        return await _copy(loop, transport, drain, file, offset, count)
    finally:
        # Also after an error or a cancel: the file's position says what was sent.
        if drain.sent > 0 and _seekable(file):
            file.seek(offset + drain.sent)
        if not transport.is_closing():
            try:
                await drain.drain()
            finally:
                drain.restore()
        else:
            drain.restore()
