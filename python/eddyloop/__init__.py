"""eddyloop: an asyncio event loop on eddy (io_uring or epoll), used as uvloop is.

    import asyncio, eddyloop
    eddyloop.install()                      # or:
    asyncio.set_event_loop_policy(eddyloop.EventLoopPolicy())
    asyncio.run(main())

The backend comes from EDDY_BACKEND (io_uring, epoll or auto), or
new_event_loop(backend=...).
"""

import asyncio

from .loop import Loop

__all__ = ("Loop", "new_event_loop", "EventLoopPolicy", "install")
__version__ = "0.1.0"

_slow_callback_ms = 0  # install(slow_callback_ms=...): for every new loop


def new_event_loop(backend=None):
    """A new eddyloop Loop (backend: 'io_uring', 'epoll', 'libuv', 'auto' or None for
    EDDY_BACKEND)."""
    loop = Loop(backend)
    if _slow_callback_ms:
        loop.set_slow_callback(_slow_callback_ms / 1000.0)
    return loop


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, making eddyloop loops."""

    def _loop_factory(self):
        return new_event_loop()


def install(slow_callback_ms=None):
    """asyncio.set_event_loop_policy(EventLoopPolicy()). With slow_callback_ms,
    every loop made from then on logs each callback or task step that runs longer
    than that, on asyncio's logger ("Executing <Task ...> took 0.120 seconds", as
    asyncio's debug mode says it), cheaply enough to leave on in production."""
    global _slow_callback_ms
    if slow_callback_ms is not None:
        ms = float(slow_callback_ms)
        if not 0 <= ms <= 3_600_000:
            raise ValueError(f"slow_callback_ms must be 0..3600000, got {slow_callback_ms!r}")
        _slow_callback_ms = ms
    asyncio.set_event_loop_policy(EventLoopPolicy())
