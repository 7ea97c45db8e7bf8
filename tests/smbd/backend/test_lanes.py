"""Data-write lanes (smbd.backend.lanes) and the POSIX backend's writes through them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import trio

from smbd.backend import Disposition, PosixShare, lanes
from smbd.backend.errors import BackendError
from smbd.backend.inline_writes import InlineWrites


async def test_results_and_exceptions_come_back() -> None:
    lane = lanes.Lanes(2).lane(0)
    assert await lane.run(lambda a, b: a + b, 2, 3) == 5

    def boom() -> None:
        raise OSError(5, "I/O error")

    with pytest.raises(OSError, match="I/O error"):
        await lane.run(boom)


async def test_one_lane_runs_jobs_in_order_in_one_thread() -> None:
    lane = lanes.Lanes(1).lane(7)
    seen: list[tuple[int, int]] = []

    def job(i: int) -> int:
        seen.append((i, threading.get_ident()))
        return i

    results: list[int] = []

    async def one(i: int) -> None:
        results.append(await lane.run(job, i))

    async with trio.open_nursery() as n:
        for i in range(20):
            n.start_soon(one, i)
            await trio.lowlevel.checkpoint()  # submit in order
    assert [i for i, _t in seen] == list(range(20))
    assert len({t for _i, t in seen}) == 1
    assert threading.get_ident() not in {t for _i, t in seen}
    assert sorted(results) == list(range(20))


async def test_a_burst_finished_while_the_loop_is_busy_costs_one_wakeup() -> None:
    lane = lanes.Lanes(1).lane(0)
    gate = threading.Event()
    done: list[int] = []

    async def one(i: int) -> None:
        done.append(await lane.run(lambda: gate.wait(5) and i))

    async with trio.open_nursery() as n:
        for i in range(5):
            n.start_soon(one, i)
        await trio.sleep(0.05)  # all five queued, the first one waiting at the gate
        before = lane.wakeups
        gate.set()
        time.sleep(0.3)  # the event loop is busy while the lane finishes all five
    assert sorted(done) == list(range(5))
    assert lane.wakeups - before == 1
    assert lane.jobs == 5


async def test_keys_map_to_lanes_and_idle_threads_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lanes, "IDLE_TIMEOUT", 0.05)
    ls = lanes.Lanes(3)
    assert ls.lane(4) is ls.lane(1) is not ls.lane(2)
    lane = ls.lane(0)
    assert await lane.run(threading.get_ident) != threading.get_ident()
    await trio.sleep(0.3)  # the idle thread exits ...
    assert await lane.run(lambda: 1) == 1  # ... and the next job starts another
    assert lane.threads_started == 2
    assert ls.statistics()["jobs"] == 2


async def test_a_job_is_not_abandoned_on_cancel() -> None:
    lane = lanes.Lanes(1).lane(0)
    gate = threading.Event()
    finished: list[bool] = []

    def slow() -> None:
        gate.wait(5)
        finished.append(True)

    with trio.move_on_after(0.05) as scope:
        await _run_and_release(lane, slow, gate)
    assert finished == [True]
    assert scope.cancelled_caught


async def _run_and_release(lane: lanes.Lane, fn: object, gate: threading.Event) -> None:
    async def release() -> None:
        await trio.sleep(0.2)  # well after the deadline
        gate.set()

    async with trio.open_nursery() as n:
        n.start_soon(release)
        await lane.run(fn)  # type: ignore[arg-type]
        await trio.sleep(1)  # the cancellation lands here, after the job's result


def test_lanes_need_one() -> None:
    with pytest.raises(ValueError):
        lanes.Lanes(0)


async def test_posix_writes_go_through_the_file_lane(
    share_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = PosixShare(share_root, inline_writes=InlineWrites(max_bytes=0))  # lanes only
    synced: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    h = share.open_sync(("f.bin",), Disposition.CREATE, 0, want_write=True).handle
    data = os.urandom(3 << 20)
    async with trio.open_nursery() as n:
        for off in range(0, len(data), 1 << 20):
            n.start_soon(share.write, h, memoryview(data)[off : off + (1 << 20)], off)
    assert await share.write(h, memoryview(b"tail"), len(data), sync=True) == 4
    assert synced == [h.fd]  # WRITE_THROUGH still reaches the disk before the reply
    assert share._lanes.statistics()["jobs"] == 4
    await share.close_handle(h)
    share.close()
    assert (share_root / "f.bin").read_bytes() == data + b"tail"


async def test_posix_write_error_is_a_backend_error(share: PosixShare, share_root: Path) -> None:
    (share_root / "g.bin").write_bytes(b"")
    h = share.open_sync(("g.bin",), Disposition.OPEN, 0, want_write=False).handle
    with pytest.raises(BackendError):
        await share.write(h, memoryview(b"x"), 0)
    await share.close_handle(h)
