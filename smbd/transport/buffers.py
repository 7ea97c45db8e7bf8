"""Reusable large message buffers.

A fresh 8 MiB ``bytearray`` costs its zeroing plus ~2000 page faults the first time it is
touched (1-15 ms on a busy machine), more than the ``recv_into`` or ``preadv`` that fills
it. Large receive and READ buffers therefore come from a small pool and go back to it
once the message has been processed or sent.

Returning a buffer is safe by construction: ``give`` releases the caller's view and
keeps the ``bytearray`` only when nothing else refers to it any more (no slice kept by a
handler, no other object); otherwise the buffer is simply left to the garbage collector.
The pool's memory is bounded by ``max_bytes``. It is used from the event loop's thread
only (no locking).
"""

from __future__ import annotations

import sys

__all__ = ["POOL", "BufferPool"]

_GRAIN = 64 * 1024  # size classes: multiples of 64 KiB


class BufferPool:
    """Free lists of ``bytearray`` buffers by size class (multiples of 64 KiB)."""

    __slots__ = ("_free", "_held", "max_bytes", "min_size", "reused")

    def __init__(self, max_bytes: int = 64 << 20, min_size: int = _GRAIN) -> None:
        self.max_bytes = max_bytes
        self.min_size = min_size
        self._free: dict[int, list[bytearray]] = {}
        self._held = 0
        self.reused = 0

    def take(self, size: int) -> memoryview:
        """A writable view of exactly ``size`` bytes (contents undefined)."""
        if size < self.min_size:
            return memoryview(bytearray(size))
        cls = -(-size // _GRAIN) * _GRAIN
        free = self._free.get(cls)
        if free:
            buf = free.pop()
            self._held -= cls
            self.reused += 1
        else:
            buf = bytearray(cls)
        return memoryview(buf)[:size]

    def give(self, view: memoryview) -> None:
        """Hand back a view obtained from ``take`` (or any view of a private bytearray).
        The view is released; the caller must not use it (or slices of it) again."""
        buf = view.obj
        if not isinstance(buf, bytearray):
            return
        size = len(buf)
        if size < self.min_size or size % _GRAIN:
            return
        try:
            view.release()
        except BufferError:  # exported further: still in use somewhere
            return
        del view
        # references: ``buf`` here and getrefcount's argument; any more is a live user
        if sys.getrefcount(buf) > 2 or self._held + size > self.max_bytes:
            return
        self._free.setdefault(size, []).append(buf)
        self._held += size

    def statistics(self) -> dict[str, int]:
        return {
            "held_bytes": self._held,
            "buffers": sum(len(v) for v in self._free.values()),
            "reused": self.reused,
        }


POOL = BufferPool()
