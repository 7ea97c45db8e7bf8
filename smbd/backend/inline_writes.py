"""When a data write may run on the event loop instead of in a write lane's thread.

A lane (:mod:`smbd.backend.lanes`) costs two cross-thread wakeups per write and the GIL
changing hands around the ``pwritev``: about 0.15 ms of CPU per 1 MiB WRITE here, a fifth
of what the server spends on it. Copying 1 MiB into the page cache takes about as long,
and does not block -- unless the kernel throttles the writer (``balance_dirty_pages``:
too much dirty data waiting for the disk) or the file system waits for its journal or
for memory. Those waits can last a long time, and the event loop serves every client.

So a write runs inline only while

- it is at most ``max_bytes`` (larger ones copy long enough to hold other clients up);
- the machine's dirty and under-writeback pages stay below the background writeback
  threshold plus a quarter of the way to the throttling threshold (``/proc/vmstat``'s
  ``nr_dirty``, ``nr_writeback``, ``nr_dirty_background_threshold`` and
  ``nr_dirty_threshold``, read at most every ``sample`` seconds): below the midpoint of
  the two the kernel does not throttle at all, and the quarter leaves room for what is
  written until the next sample;
- no recent inline write was slow: one that took longer than ``slow`` seconds sends the
  writes of this share to the lanes for a while, a second per slow write at first and
  doubling for every further one (up to a minute), until an inline write is fast again.

The caller also keeps order: a write goes inline only when its file's lane is idle, so
it never overtakes a write queued before it. Write-through writes (fsync) always go to a
lane. This module reads only ``/proc/vmstat`` (injectable for tests) and a clock.

The price: with many clients writing at once, the copies that lanes spread over several
cores run on the event loop's one core. At about 0.15 ms per MiB that core still copies
several GB/s, more than the request processing around it lets through.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["InlineWrites", "read_vmstat"]

_FIELDS = (b"nr_dirty", b"nr_writeback", b"nr_dirty_threshold", b"nr_dirty_background_threshold")


def read_vmstat(path: str = "/proc/vmstat") -> dict[bytes, int]:
    """The page counts this module uses, by name; empty when the file cannot be read."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return {}
    out: dict[bytes, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(b" ")
        if name in _FIELDS:
            try:
                out[name] = int(value)
            except ValueError:
                continue
    return out


class InlineWrites:
    """The policy for one share (see the module's docstring)."""

    __slots__ = (
        "_backoff",
        "_clock",
        "_dirty_ok",
        "_next_sample",
        "_until",
        "_vmstat",
        "inline",
        "max_bytes",
        "sample",
        "slow",
        "slow_writes",
    )

    def __init__(
        self,
        *,
        max_bytes: int = 1 << 20,
        slow: float = 0.002,
        sample: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        vmstat: Callable[[], dict[bytes, int]] = read_vmstat,
    ) -> None:
        self.max_bytes = max_bytes
        self.slow = slow
        self.sample = sample
        self._clock = clock
        self._vmstat = vmstat
        self._next_sample = -1.0  # sample at the first call
        self._dirty_ok = False
        self._until = 0.0  # no inline writes before this time (after a slow one)
        self._backoff = 0.0
        self.inline = 0  # writes run inline
        self.slow_writes = 0  # inline writes that took longer than ``slow``

    def allowed(self, size: int) -> bool:
        """Whether a write of ``size`` bytes may run inline now."""
        if size > self.max_bytes:
            return False
        now = self._clock()
        if now < self._until:
            return False
        if now >= self._next_sample:
            self._next_sample = now + self.sample
            self._dirty_ok = self._below_threshold(self._vmstat())
        return self._dirty_ok

    @staticmethod
    def _below_threshold(v: dict[bytes, int]) -> bool:
        try:
            dirty = v[b"nr_dirty"] + v[b"nr_writeback"]
            background = v[b"nr_dirty_background_threshold"]
            limit = v[b"nr_dirty_threshold"]
        except KeyError:
            return False  # no way to tell: writes stay in the lanes
        return dirty < background + max(limit - background, 0) // 4

    def took(self, seconds: float) -> None:
        """An inline write's duration: a slow one turns inline writes off for a while."""
        self.inline += 1
        if seconds > self.slow:
            self.slow_writes += 1
            self._backoff = min(max(self._backoff * 2, 1.0), 60.0)
            self._until = self._clock() + self._backoff
        elif seconds < self.slow / 2:
            self._backoff = 0.0

    def statistics(self) -> dict[str, int]:
        return {"inline": self.inline, "slow": self.slow_writes}
