"""Data writes on the event loop (smbd.backend.inline_writes) and the POSIX backend's use
of it: inline while the kernel would not throttle the writer, to a lane otherwise."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from smbd.backend import Disposition, PosixShare
from smbd.backend.inline_writes import InlineWrites, read_vmstat

MiB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _vmstat(
    dirty: int, writeback: int = 0, background: int = 1000, limit: int = 2000
) -> Callable[[], dict[bytes, int]]:
    return lambda: {
        b"nr_dirty": dirty,
        b"nr_writeback": writeback,
        b"nr_dirty_background_threshold": background,
        b"nr_dirty_threshold": limit,
    }


def test_inline_while_dirty_pages_stay_below_the_line() -> None:
    # the line: background threshold + a quarter of the way to the throttling threshold
    assert InlineWrites(vmstat=_vmstat(1249)).allowed(MiB)
    assert not InlineWrites(vmstat=_vmstat(1250)).allowed(MiB)
    assert not InlineWrites(vmstat=_vmstat(1000, writeback=300)).allowed(MiB)
    assert not InlineWrites(vmstat=lambda: {}).allowed(MiB)  # cannot tell: lanes
    assert not InlineWrites(vmstat=_vmstat(0)).allowed(MiB + 1)  # too large to copy inline


def test_vmstat_is_read_at_most_once_per_sample() -> None:
    clock = Clock()
    reads: list[int] = []
    state = {"dirty": 0}

    def vmstat() -> dict[bytes, int]:
        reads.append(1)
        return _vmstat(state["dirty"])()

    p = InlineWrites(clock=clock, vmstat=vmstat, sample=0.1)
    assert p.allowed(4096) and p.allowed(4096)
    assert len(reads) == 1
    state["dirty"] = 5000  # the writeback backlog grows ...
    clock.now += 0.05
    assert p.allowed(4096)  # ... unseen until the next sample
    clock.now += 0.06
    assert not p.allowed(4096)
    assert len(reads) == 2


def test_a_slow_write_sends_writes_to_the_lanes_for_a_while() -> None:
    clock = Clock()
    p = InlineWrites(clock=clock, vmstat=_vmstat(0), slow=0.002)
    assert p.allowed(MiB)
    p.took(0.0001)
    assert p.allowed(MiB)
    p.took(0.05)  # slow: one second off
    assert not p.allowed(MiB)
    clock.now += 1.01
    assert p.allowed(MiB)
    p.took(0.05)  # slow again: two seconds
    clock.now += 1.5
    assert not p.allowed(MiB)
    clock.now += 0.6
    assert p.allowed(MiB)
    p.took(0.0005)  # fast again: the next slow one starts over at one second
    p.took(0.05)
    clock.now += 1.01
    assert p.allowed(MiB)
    assert p.statistics() == {"inline": 5, "slow": 3}


def test_read_vmstat(tmp_path: Path) -> None:
    f = tmp_path / "vmstat"
    f.write_bytes(b"nr_free_pages 5\nnr_dirty 12\nnr_writeback 3\nnr_dirty_threshold 900\n"
                  b"nr_dirty_background_threshold 450\nnr_junk x\n")  # fmt: skip
    assert read_vmstat(str(f)) == {
        b"nr_dirty": 12,
        b"nr_writeback": 3,
        b"nr_dirty_threshold": 900,
        b"nr_dirty_background_threshold": 450,
    }
    assert read_vmstat(str(tmp_path / "missing")) == {}
    # this machine's kernel has them all
    assert len(read_vmstat()) == 4


async def test_posix_small_writes_run_inline_and_keep_order(share_root: Path) -> None:
    policy = InlineWrites(vmstat=_vmstat(0))
    share = PosixShare(share_root, inline_writes=policy)
    h = share.open_sync(("f.bin",), Disposition.CREATE, 0, want_write=True).handle
    data = os.urandom(4 * MiB)
    async with trio.open_nursery() as n:
        for off in range(0, len(data), MiB):
            n.start_soon(share.write, h, memoryview(data)[off : off + MiB], off)
    assert policy.inline == 4
    assert share._lanes.statistics()["jobs"] == 0
    # write-through always takes the lane (its fdatasync can take long)
    assert await share.write(h, memoryview(b"tail"), len(data), sync=True) == 4
    assert share._lanes.statistics()["jobs"] == 1
    # larger than 1 MiB: the lane
    assert await share.write(h, memoryview(data[: 2 * MiB]), 0) == 2 * MiB
    assert share._lanes.statistics()["jobs"] == 2
    await share.close_handle(h)
    share.close()
    assert (share_root / "f.bin").read_bytes() == data + b"tail"


async def test_posix_write_waits_its_turn_behind_a_queued_one(
    share_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that could go inline takes the lane while an earlier write to the same
    file is still queued there, so that it cannot overtake it."""
    state = {"dirty": 10_000}  # throttling ahead: the first write goes to the lane
    policy = InlineWrites(vmstat=lambda: _vmstat(state["dirty"])(), sample=0.0)
    share = PosixShare(share_root, inline_writes=policy)
    h = share.open_sync(("g.bin",), Disposition.CREATE, 0, want_write=True).handle
    gate = threading.Event()  # holds the first write in the lane's thread
    real = share.write_sync
    order: list[bytes] = []

    def write_sync(handle, data, offset, *, sync=False):  # type: ignore[no-untyped-def]
        order.append(bytes(data))
        if bytes(data) == b"first":
            assert gate.wait(10)
        return real(handle, data, offset, sync=sync)

    monkeypatch.setattr(share, "write_sync", write_sync)
    async with trio.open_nursery() as n:
        n.start_soon(share.write, h, memoryview(b"first"), 0)
        await trio.testing.wait_all_tasks_blocked()
        state["dirty"] = 0  # inline would be allowed now ...
        n.start_soon(share.write, h, memoryview(b"second"), 0)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert order == [b"first", b"second"]  # ... but the lane had a write queued
    assert policy.inline == 0
    assert share._lanes.statistics()["jobs"] == 2
    await share.close_handle(h)
    share.close()
    assert (share_root / "g.bin").read_bytes() == b"second"
