"""Reusable large message buffers.

A fresh 8 MiB ``bytearray`` costs its zeroing plus ~2000 page faults the first time it is
touched (1-15 ms on a busy machine), more than the ``recv_into`` or ``preadv`` that fills
it. Large receive and READ buffers therefore come from a small pool and go back to it
once the message has been processed or sent.

Returning a buffer is safe by construction: ``give`` releases the caller's view and
keeps the buffer only when nothing else refers to it any more (no slice kept by a
handler, no other object); otherwise the buffer is simply left to the garbage collector.
The pool's memory is bounded by ``max_bytes``. It is used from the event loop's thread
only (no locking).

Pooled buffers are anonymous mappings, so they start on a page boundary, and ``take``
can place a chosen byte of the view on a 64-byte boundary (``lead``). Where the bulk of
a message starts matters: the kernel's copies into and out of a buffer (``preadv``,
``pwritev``, ``recv_into``) run at less than half speed on common x86 CPUs when that
address is not 32-byte aligned. A ``bytearray`` of this size is a malloc'd chunk that
starts 16 bytes into a page: a 1 MiB ``preadv`` into one was measured at 125-175 us
against 50-65 us into an aligned buffer, and a 1 MiB ``pwritev`` from data 16 bytes off
alignment at ~100 us against ~60 us.
"""

from __future__ import annotations

import mmap
import sys

__all__ = ["POOL", "BufferPool"]

_GRAIN = 64 * 1024  # size classes: multiples of 64 KiB
_ALIGN = 64  # a cache line


class BufferPool:
    """Free lists of page-aligned buffers (anonymous ``mmap``) by size class (multiples of
    64 KiB)."""

    __slots__ = ("_free", "_held", "max_bytes", "min_size", "reused")

    def __init__(self, max_bytes: int = 64 << 20, min_size: int = _GRAIN) -> None:
        self.max_bytes = max_bytes
        self.min_size = min_size
        self._free: dict[int, list[mmap.mmap]] = {}
        self._held = 0
        self.reused = 0

    def take(self, size: int, lead: int = 0) -> memoryview:
        """A writable view of exactly ``size`` bytes (contents undefined). For a pooled
        size, byte ``lead`` of the view is 64-byte aligned (the view itself, for 0)."""
        if size < self.min_size:
            return memoryview(bytearray(size))
        start = -lead % _ALIGN
        cls = -(-(size + start) // _GRAIN) * _GRAIN
        free = self._free.get(cls)
        if free:
            buf = free.pop()
            self._held -= cls
            self.reused += 1
        else:
            buf = mmap.mmap(-1, cls)
        return memoryview(buf)[start : start + size]

    def give(self, view: memoryview) -> None:
        """Hand back a view obtained from ``take``. The view is released; the caller must
        not use it (or slices of it) again. Any other buffer is left alone."""
        buf = view.obj
        if not isinstance(buf, mmap.mmap):
            return
        size = len(buf)
        if size % _GRAIN:
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
