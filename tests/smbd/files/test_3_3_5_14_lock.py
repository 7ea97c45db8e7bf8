"""[MS-SMB2] 3.3.5.14 LOCK and [MS-FSA] 2.1.5.7 byte-range lock semantics, in process."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from smbd.server.files.locks import LockManager, overlaps
from smbd.server.request import Request, SMBError
from smbd.wire import lock as wl
from smbd.wire.constants import Command
from smbd.wire.header import Header
from smbd.wire.status import NTStatus
from tests.smbd.files.async_harness import AsyncClient, SharedServer, until
from tests.smbd.files.harness import make_state

F = wl.LockFlags
X, S, U, FAIL = F.EXCLUSIVE_LOCK, F.SHARED_LOCK, F.UNLOCK, F.FAIL_IMMEDIATELY


def _lock(
    fid: tuple[int, int], *elems: tuple[int, int, int], seq: tuple[int, int] = (0, 0)
) -> bytes:
    return wl.pack_lock_request(
        wl.LockRequest(seq[0], seq[1], fid, tuple(wl.LockElement(*e) for e in elems))
    )


@pytest.fixture
def pair(tmp_path: Path) -> tuple[AsyncClient, AsyncClient]:
    root = tmp_path / "share"
    root.mkdir()
    files, share = make_state(root)
    server = SharedServer(files)
    return AsyncClient(server, share), AsyncClient(server, share)


def test_overlap_rules() -> None:
    assert overlaps(0, 10, 5, 10)
    assert not overlaps(0, 10, 10, 5)
    assert overlaps(0, 10, 5, 0)  # zero-length inside a range
    assert not overlaps(0, 10, 0, 0)  # ... but not at its start
    assert not overlaps(5, 0, 5, 0)  # two zero-length locks never conflict


async def test_exclusive_shared_and_unlock(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, b = pair
    fa = (await a.create("f")).file_id
    fb = (await b.create("f")).file_id
    assert (await a.call(Command.LOCK, _lock(fa, (0, 10, X | FAIL)))).status == 0
    denied = NTStatus.LOCK_NOT_GRANTED
    assert await b.status_of(Command.LOCK, _lock(fb, (5, 10, S | FAIL))) == denied
    # locks do not nest: the owner's own exclusive lock conflicts with a second one
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 1, X | FAIL))) == denied
    # but a shared lock stacks on the open's own exclusive lock
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 1, S | FAIL))) == 0
    files = a.server.files
    o_a = files.lookup(_req(a), *fa)
    o_b = files.lookup(_req(b), *fb)
    assert isinstance(files.locks, LockManager)
    assert files.locks.check_io(o_b, 0, 1, False)  # reading under another's exclusive lock
    assert not files.locks.check_io(o_a, 0, 1, False)
    assert files.locks.check_io(o_a, 0, 1, True)  # own shared lock blocks own writes
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 11, U))) == NTStatus.RANGE_NOT_LOCKED
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 10, U))) == 0
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 1, U))) == 0
    assert await b.status_of(Command.LOCK, _lock(fb, (5, 10, S | FAIL))) == 0


def _req(c: AsyncClient) -> Request:
    h = Header(0, 0, 0, 0, 0, 0, 0, 0, c.tree.tree_id, c.session.session_id, bytes(16))
    mv = memoryview(bytes(64))
    return Request(
        header=h, body=mv, message=mv, server=c.server,  # type: ignore[arg-type]
        connection=c.conn, session=c.session, tree=c.tree,
    )  # fmt: skip


async def test_invalid_requests(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, _ = pair
    fa = (await a.create("f")).file_id
    bad = [
        _lock(fa, (0, 1, X), (2, 1, X | FAIL)),  # a blocking lock among several
        _lock(fa, (0, 1, X | S)),
    ]
    for body in bad:
        assert await a.status_of(Command.LOCK, body) == NTStatus.INVALID_PARAMETER
    # unlocks run in order: the first is done, the lock element after it is invalid
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 1, X | FAIL))) == 0
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 1, U), (2, 1, X))) == (
        NTStatus.INVALID_PARAMETER
    )
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 1, U))) == NTStatus.RANGE_NOT_LOCKED
    assert await a.status_of(Command.LOCK, _lock(fa, (2**64 - 1, 2, X | FAIL))) == (
        NTStatus.INVALID_LOCK_RANGE
    )
    # all or nothing: the second element conflicts with the first
    assert (
        await a.status_of(Command.LOCK, _lock(fa, (0, 10, X | FAIL), (5, 1, X | FAIL)))
        == NTStatus.LOCK_NOT_GRANTED
    )
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 10, X | FAIL))) == 0


async def test_blocking_lock_waits_and_completes(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, b = pair
    fa = (await a.create("f")).file_id
    fb = (await b.create("f")).file_id
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 10, X | FAIL))) == 0
    results: list[int] = []
    async with trio.open_nursery() as n:
        n.start_soon(lambda: _collect(b, _lock(fb, (0, 10, X)), results))
        await until(lambda: b.hooks.interim == 1)
        assert not results  # STATUS_PENDING went out
        assert await a.status_of(Command.LOCK, _lock(fa, (0, 10, U))) == 0
    assert results == [NTStatus.SUCCESS]


async def test_blocking_lock_cancel_and_close(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, b = pair
    fa = (await a.create("f")).file_id
    fb = (await b.create("f")).file_id
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 10, X | FAIL))) == 0
    with trio.move_on_after(0.05) as scope:  # CANCEL cancels the handler's scope
        await b.call(Command.LOCK, _lock(fb, (0, 10, X)))
    assert scope.cancelled_caught
    results: list[int] = []
    async with trio.open_nursery() as n:
        n.start_soon(lambda: _collect(b, _lock(fb, (0, 10, X)), results))
        await until(lambda: b.hooks.interim == 2)
        await b.close(fb)
    assert results == [NTStatus.RANGE_NOT_LOCKED]


async def test_lock_sequence_replay(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, _ = pair
    fa = (await a.create("f")).file_id
    o = a.server.files.lookup(_req(a), *fa)
    o.is_durable = True
    body = _lock(fa, (0, 10, X | FAIL), seq=(3, 1))
    assert await a.status_of(Command.LOCK, body) == 0
    assert await a.status_of(Command.LOCK, body) == 0  # a replay: not locked twice
    assert await a.status_of(Command.LOCK, _lock(fa, (0, 10, X | FAIL), seq=(4, 1))) == (
        NTStatus.LOCK_NOT_GRANTED
    )


async def _collect(c: AsyncClient, body: bytes, out: list[int]) -> None:
    try:
        out.append((await c.call(Command.LOCK, body)).status)
    except SMBError as exc:
        out.append(exc.status)
