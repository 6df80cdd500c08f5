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


def new_event_loop(backend=None):
    """A new eddyloop Loop (backend: 'io_uring', 'epoll', 'auto' or None for EDDY_BACKEND)."""
    return Loop(backend)


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, making eddyloop loops."""

    def _loop_factory(self):
        return new_event_loop()


def install():
    """asyncio.set_event_loop_policy(EventLoopPolicy())."""
    asyncio.set_event_loop_policy(EventLoopPolicy())
