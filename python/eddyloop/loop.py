"""eddyloop.Loop: asyncio's event loop API on eddy's loop.

asyncio.BaseEventLoop keeps what is loop-independent (tasks and futures, the
exception handler, executors, async generators, host-name resolution and the
connection logic of create_connection/create_server). Everything that touches
time, scheduling or file descriptors goes to eddyloop._core (C++ on eddy):
call_soon and timers, running, stream transports with their accept loops, and
fd watches for add_reader/add_writer, on which the sock_* methods, datagram
and pipe transports are built.
"""

import asyncio
import errno
import os
import signal
import socket
import sys
import threading
import warnings
import weakref
from asyncio import base_events, constants, events, futures, selector_events, sslproto, unix_events

try:
    import ssl
except ImportError:  # Python built without ssl: asyncio has no TLS either
    ssl = None

from asyncio import format_helpers
from asyncio.log import logger

from . import _core
from . import sendfile as _sendfile


def _fileobj_to_fd(fileobj):
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class Loop(base_events.BaseEventLoop):
    """An asyncio event loop running on eddy (io_uring or epoll, chosen by
    EDDY_BACKEND or `backend`)."""

    def __init__(self, backend=None):
        super().__init__()
        self._readers = {}
        self._writers = {}
        self._child_pidfds = {}  # pidfd -> pid of a child not yet exited
        self._serving = {}
        self._transports = weakref.WeakValueDictionary()  # selector transports (datagram)
        self._signal_handlers = {}
        self._ssock = self._csock = None
        self._core = None
        core = _core.Core(self, backend)
        self._core = core
        # Bound C methods as instance attributes: asyncio's C Future and Task
        # look call_soon up on the loop for every callback.
        self.time = core.time
        self._bind_calls()
        # The socket pair signals wake the loop through (see _take_signal_wakeup),
        # made here as asyncio's selector loop makes its self-pipe.
        self._make_self_pipe()

    # ---- operability (docs/operability.md) --------------------------------------

    def metrics(self):
        """eddy's loop metrics as a dict: busy_time and idle_time (seconds),
        utilization, iterations, callbacks, io_completions, live_tasks, ready_depth,
        in_flight_io, armed_timers, ops_submitted by kind, in_flight (operations
        waiting now) by kind, ..."""
        self._check_closed()
        return self._core.metrics()

    def set_slow_callback(self, seconds):
        """Log (on asyncio's logger, as debug mode does) every callback or task step
        that runs longer than `seconds`; 0 or None turns it off. Cheap enough to
        leave on: two clock reads per callback."""
        self._core.set_slow_callback(float(seconds or 0))

    def _eddy_slow_callback(self, callback, seconds):
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, futures.Future):
            what = repr(owner)  # a task step: name the task and its coroutine
        else:
            what = format_helpers._format_callback_source(callback, ())
        logger.warning("Executing %s took %.3f seconds", what, seconds)

    @property
    def backend(self):
        """The eddy backend this loop runs on ('io_uring' or 'epoll')."""
        return self._core.backend

    def __repr__(self):
        core = self._core
        return (f"<{self.__class__.__name__} backend={core.backend if core else None} "
                f"running={self.is_running()} closed={self.is_closed()} debug={self.get_debug()}>")

    # ---- running -----------------------------------------------------------

    def call_soon_threadsafe(self, callback, *args, context=None):
        self._check_closed()
        if self._debug:
            self._check_callback(callback, "call_soon_threadsafe")
            return self._made_here(self._core.call_soon_threadsafe(callback, *args, context=context))
        return self._core.call_soon_threadsafe(callback, *args, context=context)

    # call_soon, call_later and call_at are the core's bound C methods, except in
    # debug mode, where they make asyncio's debug checks (the loop's own thread, a
    # callable that is not a coroutine) and record where each handle was made
    # (its _source_traceback, which the exception handler's context carries).
    def set_debug(self, enabled):
        super().set_debug(enabled)
        self._bind_calls()

    def _bind_calls(self):
        core = getattr(self, "_core", None)
        if core is None:
            return  # BaseEventLoop.__init__ calls set_debug before the core exists
        if self._debug:
            self.call_soon, self.call_later, self.call_at = (
                self._debug_call_soon, self._debug_call_later, self._debug_call_at)
        else:
            self.call_soon, self.call_later, self.call_at = core.call_soon, core.call_later, core.call_at

    def _debug_checks(self, callback, method):
        self._check_closed()
        self._check_thread()
        self._check_callback(callback, method)

    @staticmethod
    def _made_here(h):
        # The frame that called the loop method (the wrapper's caller).
        h._source_traceback = format_helpers.extract_stack(sys._getframe(2))
        return h

    def _debug_call_soon(self, callback, *args, context=None):
        self._debug_checks(callback, "call_soon")
        return self._made_here(self._core.call_soon(callback, *args, context=context))

    def _debug_call_later(self, delay, callback, *args, context=None):
        if delay is None:
            raise TypeError("delay must not be None")
        self._debug_checks(callback, "call_at")  # asyncio's call_later goes through call_at
        return self._made_here(self._core.call_later(delay, callback, *args, context=context))

    def _debug_call_at(self, when, callback, *args, context=None):
        if when is None:
            raise TypeError("when cannot be None")
        self._debug_checks(callback, "call_at")
        return self._made_here(self._core.call_at(when, callback, *args, context=context))

    def run_forever(self):
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)
            events._set_running_loop(self)
            wakeup = self._take_signal_wakeup()
            try:
                self._core.run_forever()
            finally:
                if wakeup is not None:
                    self._give_back_signal_wakeup(wakeup)
        finally:
            self._stopping = False
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def stop(self):
        self._core.stop()

    # Signals reach Python only when the main thread runs Python code, and an idle
    # loop sits in the kernel: epoll_wait returns EINTR, but io_uring's wait and
    # libuv's uv_run go back in (libuv retries EINTR itself). So, as asyncio's
    # selector loop does for add_signal_handler, the C-level handler's byte on the
    # wakeup fd (signal.set_wakeup_fd) makes a watched socket readable: the wait
    # ends on every backend, and the core runs PyErr_CheckSignals on the way out,
    # where default_int_handler raises KeyboardInterrupt (or asyncio.Runner's
    # handler cancels the main task). Only the main thread's loop takes the wakeup
    # fd (Python allows nothing else), for the length of run_forever, and gives the
    # previous one back, as asyncio.Runner does with the SIGINT handler.
    def _take_signal_wakeup(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        try:
            return (signal.set_wakeup_fd(self._csock.fileno()),)
        except (ValueError, OSError):
            return None

    def _give_back_signal_wakeup(self, wakeup):
        if self._signal_handlers or self._csock is None:
            return  # add_signal_handler's own wakeup fd stays until they are removed
        try:
            signal.set_wakeup_fd(wakeup[0])
        except (ValueError, OSError):
            pass

    def _make_self_pipe(self):
        if self._ssock is None:
            self._ssock, self._csock = socket.socketpair()
            self._ssock.setblocking(False)
            self._csock.setblocking(False)
            # Nothing on this watch refers to the loop strongly (a weak reference,
            # the core borrowed), so a loop dropped unclosed is still collected.
            fd = self._ssock.fileno()
            self._readers[fd] = _core.watch(self._core, fd, False, _SignalPipeHandle(self), True)

    def close(self):
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)
        for w in (*self._readers.values(), *self._writers.values(), *self._serving.values()):
            w.cancel()
        self._readers.clear()
        self._writers.clear()
        self._serving.clear()
        if self._child_pidfds:
            warnings.warn(f"eddyloop: closing with {len(self._child_pidfds)} child process(es) still "
                          "running; they will not be waited for", ResourceWarning, source=self)
            for pidfd in self._child_pidfds:
                os.close(pidfd)
            self._child_pidfds.clear()
        super().close()
        if self._core is not None:
            self._core.close()
        if self._ssock is not None:
            self._ssock.close()
            self._csock.close()
            self._ssock = self._csock = None

    def _write_to_self(self):
        self._core.call_soon_threadsafe(_noop)

    def _process_events(self, event_list):  # pragma: no cover - asyncio's selector hook
        raise NotImplementedError

    # ---- fd watches ----------------------------------------------------------

    def _add_reader(self, fd, callback, *args):
        self._check_closed()
        fd = _fileobj_to_fd(fd)
        old = self._readers.pop(fd, None)
        # A fresh watch every time, the old one cancelled and its handle too
        # (asyncio cancels the replaced handle): nothing of it runs again.
        self._readers[fd] = _core.watch(self._core, fd, False, events.Handle(callback, args, self, None))
        if old is not None:
            old.cancel()

    def _remove_reader(self, fd):
        if self.is_closed():
            return False
        w = self._readers.pop(_fileobj_to_fd(fd), None)
        if w is None:
            return False
        w.cancel()
        return True

    def _add_writer(self, fd, callback, *args):
        self._check_closed()
        fd = _fileobj_to_fd(fd)
        old = self._writers.pop(fd, None)
        # A fresh watch every time, the old one cancelled and its handle too
        # (asyncio cancels the replaced handle): nothing of it runs again.
        self._writers[fd] = _core.watch(self._core, fd, True, events.Handle(callback, args, self, None))
        if old is not None:
            old.cancel()

    def _remove_writer(self, fd):
        if self.is_closed():
            return False
        w = self._writers.pop(_fileobj_to_fd(fd), None)
        if w is None:
            return False
        w.cancel()
        return True

    def _ensure_fd_no_transport(self, fd):
        # As asyncio's selector loop: a stream transport's fd belongs to it; a
        # watch of the application's on it would steal or duplicate its events.
        # (asyncio's own check is not called: it formats the datagram transports
        # it finds with a repr that reads loop._selector, which eddyloop lacks.)
        fileno = fd
        if not isinstance(fileno, int):
            try:
                fileno = int(fileno.fileno())
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"Invalid file object: {fd!r}") from None
        transport = _core.transport_of_fd(self._core, fileno)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(f"File descriptor {fd!r} is used by transport {transport!r}")

    def add_reader(self, fd, callback, *args):
        """Run callback(*args) each time fd is readable, until remove_reader(fd)."""
        self._ensure_fd_no_transport(fd)
        self._add_reader(fd, callback, *args)

    def remove_reader(self, fd):
        self._ensure_fd_no_transport(fd)
        return self._remove_reader(fd)

    def add_writer(self, fd, callback, *args):
        """Run callback(*args) each time fd is writable, until remove_writer(fd)."""
        self._ensure_fd_no_transport(fd)
        self._add_writer(fd, callback, *args)

    def remove_writer(self, fd):
        self._ensure_fd_no_transport(fd)
        return self._remove_writer(fd)

    def _wait_fd(self, fd, writable):
        """A future resolved once fd is readable (writable); cancelling it stops the wait."""
        fut = self.create_future()
        w = _core.wait_fd(self._core, fd, writable, fut)
        fut.add_done_callback(w._on_done)
        return fut

    # ---- sock_* --------------------------------------------------------------

    def _check_sock(self, sock):
        # asyncio's checks, in its order: an SSL socket is refused, and in debug
        # mode so is a blocking one (its calls would block the loop).
        base_events._check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    async def sock_recv(self, sock, n):
        self._check_sock(sock)
        while True:
            try:
                return sock.recv(n)
            except (BlockingIOError, InterruptedError):
                pass
            await self._wait_fd(sock.fileno(), False)

    async def sock_recv_into(self, sock, buf):
        self._check_sock(sock)
        while True:
            try:
                return sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                pass
            await self._wait_fd(sock.fileno(), False)

    async def sock_recvfrom(self, sock, bufsize):
        self._check_sock(sock)
        while True:
            try:
                return sock.recvfrom(bufsize)
            except (BlockingIOError, InterruptedError):
                pass
            await self._wait_fd(sock.fileno(), False)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        self._check_sock(sock)
        if not nbytes:
            nbytes = len(buf)
        while True:
            try:
                return sock.recvfrom_into(buf, nbytes)
            except (BlockingIOError, InterruptedError):
                pass
            await self._wait_fd(sock.fileno(), False)

    async def sock_sendall(self, sock, data):
        self._check_sock(sock)
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            try:
                sent += sock.send(view[sent:])
                continue
            except (BlockingIOError, InterruptedError):
                pass
            await self._wait_fd(sock.fileno(), True)

    async def sock_sendto(self, sock, data, address):
        self._check_sock(sock)
        while True:
            try:
                return sock.sendto(data, address)
            except (BlockingIOError, InterruptedError):
                pass
            await self._wait_fd(sock.fileno(), True)

    async def sock_connect(self, sock, address):
        self._check_sock(sock)
        if sock.family == socket.AF_INET or (base_events._HAS_IPv6 and sock.family == socket.AF_INET6):
            resolved = await self._ensure_resolved(address, family=sock.family, type=sock.type,
                                                   proto=sock.proto, loop=self)
            _, _, _, _, address = resolved[0]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            await self._wait_fd(sock.fileno(), True)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                return
            if err in (errno.EINPROGRESS, errno.EALREADY, errno.EINTR):
                continue
            raise OSError(err, f"Connect call failed {address}")

    async def sock_accept(self, sock):
        self._check_sock(sock)
        while True:
            try:
                conn, address = sock.accept()
                conn.setblocking(False)
                return conn, address
            except (BlockingIOError, InterruptedError):
                pass
            await self._wait_fd(sock.fileno(), False)

    # ---- transports ----------------------------------------------------------

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        return _core.make_stream_transport(self._core, sock, protocol, waiter, extra, server)

    # TLS runs in C on eddy (python/src/tls_transport.cpp): the transport itself
    # carries the session, made from the user's ssl.SSLContext's own SSL_CTX.
    # A context the C layer cannot take safely (see _c_tls) gets asyncio's own
    # TLS state machine instead: asyncio.sslproto.SSLProtocol (the ssl module's
    # MemoryBIO underneath) as the protocol of one of eddy's plain transports.
    # The same choice serves create_connection(ssl=...), create_server(ssl=...),
    # the Unix variants, connect_accepted_socket and start_tls.
    def _c_tls(self, sslcontext, server_side, server_hostname, handshake_timeout, shutdown_timeout):
        """A _core.TLSConfig for sslcontext, or None where asyncio.sslproto must run it."""
        if handshake_timeout is None:
            handshake_timeout = constants.SSL_HANDSHAKE_TIMEOUT
        elif handshake_timeout <= 0:
            raise ValueError(f"ssl_handshake_timeout should be a positive number, got {handshake_timeout}")
        if shutdown_timeout is None:
            shutdown_timeout = constants.SSL_SHUTDOWN_TIMEOUT
        elif shutdown_timeout <= 0:
            raise ValueError(f"ssl_shutdown_timeout should be a positive number, got {shutdown_timeout}")
        if _SSLPROTO_ONLY or ssl is None or not getattr(_core, "TLS_SAME_OPENSSL", False):
            return None
        if not isinstance(sslcontext, ssl.SSLContext):
            return None
        # A subclass that makes its own SSL objects (wrap_bio, sslobject_class)
        # expects asyncio to go through them.
        if (type(sslcontext).wrap_bio is not ssl.SSLContext.wrap_bio
                or sslcontext.sslobject_class is not ssl.SSLObject):
            return None
        # Callbacks CPython installs on the SSL_CTX that expect its own SSL
        # socket objects as the connection's app data: those stay with sslproto.
        if (sslcontext.sni_callback is not None or sslcontext.keylog_filename
                or getattr(sslcontext, "_msg_callback", None) is not None):
            return None
        if server_side:
            if sslcontext.protocol == ssl.PROTOCOL_TLS_CLIENT or sslcontext.post_handshake_auth:
                return None
        elif sslcontext.protocol == ssl.PROTOCOL_TLS_SERVER or (sslcontext.check_hostname and not server_hostname):
            return None  # sslproto raises the ssl module's own error for these
        return _core.tls_config(sslcontext, server_side, float(handshake_timeout), float(shutdown_timeout),
                                handshake_timeout)

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *, server_side=False,
                            server_hostname=None, extra=None, server=None,
                            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
                            ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT):
        if not sslcontext:
            sslcontext = sslproto._create_transport_context(server_side, server_hostname)
        hostname = server_hostname if server_hostname and not server_side else None
        tls = self._c_tls(sslcontext, server_side, hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
        if tls is not None:
            return _core.make_stream_transport(self._core, rawsock, protocol, waiter, extra, server, tls, hostname)
        ssl_protocol = sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout)
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    async def start_tls(self, transport, protocol, sslcontext, *, server_side=False, server_hostname=None,
                        ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Upgrade `transport` to TLS (asyncio's start_tls). On one of eddy's
        plain transports with a context the C layer takes, the upgrade happens
        in place and the same transport object is returned, now encrypting."""
        tls = None
        if (ssl is not None and isinstance(sslcontext, ssl.SSLContext) and type(transport) is _core.TCPTransport
                and not transport._is_tls and not transport.is_closing()):
            hostname = server_hostname if server_hostname and not server_side else None
            tls = self._c_tls(sslcontext, server_side, hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
        if tls is None:
            return await super().start_tls(transport, protocol, sslcontext, server_side=server_side,
                                           server_hostname=server_hostname,
                                           ssl_handshake_timeout=ssl_handshake_timeout,
                                           ssl_shutdown_timeout=ssl_shutdown_timeout)
        waiter = self.create_future()
        transport._start_tls(protocol, tls, hostname, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport

    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None):
        return selector_events._SelectorDatagramTransport(self, sock, protocol, address, waiter, extra)

    def _start_serving(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100,
                       ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
                       ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT):
        self._check_closed()
        fd = sock.fileno()
        if fd in self._serving:
            return
        tls = None
        if sslcontext is not None:
            tls = self._c_tls(sslcontext, True, None, ssl_handshake_timeout, ssl_shutdown_timeout)
        if tls is not None:
            self._serving[fd] = _core.serve(self._core, os.dup(fd), protocol_factory, server, backlog, tls)
            return
        if sslcontext is not None:
            # eddy's accept loop makes each connection's transport for the
            # protocol this returns: the TLS layer, over the application's. A
            # handshake that fails or times out is reported to the exception
            # handler and closes that connection only.
            app_factory = protocol_factory
            handshake = ssl_handshake_timeout
            shutdown = ssl_shutdown_timeout

            def protocol_factory():
                return sslproto.SSLProtocol(self, app_factory(), sslcontext, None, True, None,
                                            ssl_handshake_timeout=handshake,
                                            ssl_shutdown_timeout=shutdown)
        self._serving[fd] = _core.serve(self._core, os.dup(fd), protocol_factory, server, backlog)

    def _stop_serving(self, sock):
        w = self._serving.pop(sock.fileno(), None)
        if w is not None:
            w.cancel()
        sock.close()

    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        if isinstance(transport, _core.TCPTransport):
            return await _sendfile.sendfile(self, transport, file, offset, count, fallback=fallback)
        return await super().sendfile(transport, file, offset, count, fallback=fallback)

    # Unix sockets, pipes and subprocesses: asyncio's Unix loop builds these from
    # sock_connect, _start_serving and _add_reader/_add_writer, which eddy provides.
    create_unix_connection = unix_events._UnixSelectorEventLoop.create_unix_connection
    create_unix_server = unix_events._UnixSelectorEventLoop.create_unix_server
    # sock_sendfile: asyncio's Unix loop runs os.sendfile on add_writer readiness.
    _sock_sendfile_native = unix_events._UnixSelectorEventLoop._sock_sendfile_native
    _sock_sendfile_native_impl = unix_events._UnixSelectorEventLoop._sock_sendfile_native_impl
    _sock_sendfile_update_filepos = unix_events._UnixSelectorEventLoop._sock_sendfile_update_filepos
    _sock_add_cancellation_callback = unix_events._UnixSelectorEventLoop._sock_add_cancellation_callback
    _make_read_pipe_transport = unix_events._UnixSelectorEventLoop._make_read_pipe_transport
    _make_write_pipe_transport = unix_events._UnixSelectorEventLoop._make_write_pipe_transport

    # Subprocesses: asyncio's transport (pipes on add_reader/add_writer), with the
    # child's exit seen through a pidfd on this loop, as asyncio's
    # PidfdChildWatcher does, instead of the process-wide child watcher (in 3.11
    # a thread per child that blocks in waitpid; deprecated in 3.12). Works from
    # any thread's loop, needs no SIGCHLD handler and reaps only its own children.
    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr, bufsize,
                                         extra=None, **kwargs):
        waiter = self.create_future()
        transp = unix_events._UnixSubprocessTransport(self, protocol, args, shell, stdin, stdout, stderr,
                                                      bufsize, waiter=waiter, extra=extra, **kwargs)
        self._watch_child(transp)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    def _watch_child(self, transp):
        pid = transp.get_pid()
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            # Already reaped by someone else (SIGCHLD set to SIG_IGN, say).
            self.call_soon(self._child_exited, transp, pid, None)
            return
        self._child_pidfds[pidfd] = pid
        self._add_reader(pidfd, self._child_exited, transp, pid, pidfd)

    def _child_exited(self, transp, pid, pidfd):
        if pidfd is not None:
            self._remove_reader(pidfd)
            del self._child_pidfds[pidfd]
            os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            # Reaped elsewhere (a waitpid(-1) in another library): asyncio's
            # watchers report 255 in this case too.
            returncode = 255
            base_events.logger.warning("child process pid %d exit status already read: "
                                       "will report returncode 255", pid)
        transp._process_exited(returncode)

    # ---- signals -------------------------------------------------------------

    def add_signal_handler(self, sig, callback, *args):
        """Run callback(*args) on the loop when `sig` arrives (main thread only)."""
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        self._make_self_pipe()
        try:
            signal.set_wakeup_fd(self._csock.fileno())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        self._signal_handlers[sig] = events.Handle(callback, args, self, None)
        try:
            signal.signal(sig, _sighandler_noop)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                try:
                    signal.set_wakeup_fd(-1)
                except (ValueError, OSError):
                    pass
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise

    def remove_signal_handler(self, sig):
        self._check_signal(sig)
        try:
            del self._signal_handlers[sig]
        except KeyError:
            return False
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught")
            raise
        if not self._signal_handlers:
            try:
                signal.set_wakeup_fd(-1)
            except (ValueError, OSError):
                pass
        return True

    _check_signal = unix_events._UnixSelectorEventLoop._check_signal

    def _read_signals(self):
        while True:
            try:
                data = self._ssock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for signum in data:
                # asyncio's _handle_signal: a cancelled handler removes itself.
                handle = self._signal_handlers.get(signum)
                if handle is None:
                    continue
                if handle._cancelled:
                    self.remove_signal_handler(signum)
                else:
                    self._core.call_soon(_run_signal_handle, handle)


# EDDYLOOP_SSLPROTO=1: every TLS connection runs on asyncio.sslproto, as before
# eddyloop had TLS in C (for comparisons and as a way out).
_SSLPROTO_ONLY = os.environ.get("EDDYLOOP_SSLPROTO", "") not in ("", "0")


def _noop():
    pass


class _SignalPipeHandle:
    """The wakeup socket's reader: what a watch needs of a Handle (_run, cancel),
    with the loop held weakly."""
    __slots__ = ("_loop_ref", "_cancelled")

    def __init__(self, loop):
        self._loop_ref = weakref.ref(loop)
        self._cancelled = False

    def _run(self):
        loop = self._loop_ref()
        if loop is not None and not self._cancelled:
            loop._read_signals()

    def cancel(self):
        self._cancelled = True


def _run_signal_handle(handle):
    # asyncio checks `_cancelled` again when the handle's turn comes. Handle._run
    # reports ordinary exceptions with this handle in the context and lets
    # SystemExit and KeyboardInterrupt through, out of run_forever.
    if not handle._cancelled:
        handle._run()


def _sighandler_noop(signum, frame):
    """Dummy signal handler: the work happens on the loop via set_wakeup_fd."""


