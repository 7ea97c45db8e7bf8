"""Requests still running on an open, which a CLOSE of that open waits for.

A client may send a CLOSE while an earlier request on the same open is still running (an
IOCTL that waits, I/O in a worker thread). The CLOSE must not overtake it: the earlier
request answers as if the open were still there, then the CLOSE completes (Samba bug 14769,
smbtorture smb2.ioctl.bug14769). A handler that awaits with an open in hand wraps that
part in :func:`running`; CLOSE calls :func:`wait_idle` before it closes the open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from smbd.server.files.opens import Open

__all__ = ["running", "wait_idle"]

_KEY = "inflight"


class _Running:
    __slots__ = ("count", "idle")

    def __init__(self) -> None:
        self.count = 0
        self.idle = trio.Event()


@asynccontextmanager
async def running(o: Open) -> AsyncIterator[None]:
    """Count the block as a request running on ``o``."""
    r = o.extra.get(_KEY)
    if not isinstance(r, _Running):
        r = o.extra[_KEY] = _Running()
    r.count += 1
    try:
        yield
    finally:
        r.count -= 1
        if not r.count:
            del o.extra[_KEY]
            r.idle.set()


async def wait_idle(o: Open) -> None:
    """Return once no request is running on ``o`` (at once when none is)."""
    while True:
        r = o.extra.get(_KEY)
        if not isinstance(r, _Running):
            return
        await r.idle.wait()
