"""Leases and oplocks in process: granting ([MS-SMB2] 3.3.5.9.8), breaks on conflicting
opens and writes (3.3.4.6/3.3.4.7), acknowledgements (3.3.5.22) and the break timer."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from smbd.server.files.leases import LeaseManager
from smbd.server.request import SMBError
from smbd.wire import create as wc
from smbd.wire import oplock as wo
from smbd.wire import rw
from smbd.wire.constants import Command
from smbd.wire.status import NTStatus
from tests.smbd.files.async_harness import AsyncClient, SharedServer, body_of, until
from tests.smbd.files.harness import make_state

KEY1, KEY2 = b"\x11" * 16, b"\x22" * 16
R, H, W = 1, 2, 4


@pytest.fixture
def env(tmp_path: Path) -> tuple[SharedServer, AsyncClient, AsyncClient]:
    root = tmp_path / "share"
    root.mkdir()
    files, share = make_state(root)
    server = SharedServer(files)
    return server, AsyncClient(server, share), AsyncClient(server, share)


async def _lease_open(c: AsyncClient, key: bytes, state: int) -> wc.CreateResponse:
    lease = wc.pack_lease(wc.Lease(key, state, version=1))
    body = wc.pack_create_request(
        wc.CreateRequest(
            0, wc.OplockLevel.LEASE, 2, 0, 0x1F01FF, 0, 7, wc.CreateDisposition.OPEN_IF, 0,
            "f.vhdx", (wc.CreateContext(wc.CTX_REQUEST_LEASE, memoryview(lease)),),
        )
    )  # fmt: skip
    return wc.parse_create_response(body_of(await c.call(Command.CREATE, body)))


def _granted(r: wc.CreateResponse) -> int:
    (ctx,) = [d for n, d in r.contexts if n == wc.CTX_REQUEST_LEASE]
    return wc.parse_lease(ctx).state


async def test_grants(env: tuple[SharedServer, AsyncClient, AsyncClient]) -> None:
    _, a, _ = env
    r = await _lease_open(a, KEY1, R | W | H)
    assert r.oplock_level == wc.OplockLevel.LEASE and _granted(r) == R | W | H
    # the same key again: no break, the lease is shared; a downgrade request keeps RWH
    assert _granted(await _lease_open(a, KEY1, R)) == R | W | H
    assert a.hooks.interim == 0


async def test_conflicting_open_breaks_and_waits_for_the_ack(
    env: tuple[SharedServer, AsyncClient, AsyncClient],
) -> None:
    server, a, b = env
    await _lease_open(a, KEY1, R | W | H)
    got: list[wc.CreateResponse] = []
    async with trio.open_nursery() as n:
        n.start_soon(lambda: _append(got, _lease_open(b, KEY2, R | W | H)))
        await until(lambda: b.hooks.interim == 1)
        assert not got  # the CREATE went async
        (conn, cmd, body) = server.breaks[0]
        assert conn == a.conn.conn_id and cmd == Command.OPLOCK_BREAK
        note = wo.parse_lease_break_notification(body)
        assert (note.current_state, note.new_state, note.flags) == (R | W | H, R | H, 1)
        ack = wo.pack_lease_break_ack(wo.LeaseBreakAck(0, KEY1, R | H))
        resp = wo.parse_break_ack(body_of(await a.call(Command.OPLOCK_BREAK, ack)))
        assert isinstance(resp, wo.LeaseBreakAck) and resp.lease_state == R | H
    assert _granted(got[0]) == R | H  # no second writer


async def test_ack_errors(env: tuple[SharedServer, AsyncClient, AsyncClient]) -> None:
    _, a, _ = env
    await _lease_open(a, KEY1, R | H)
    not_breaking = wo.pack_lease_break_ack(wo.LeaseBreakAck(0, KEY1, R))
    assert await a.status_of(Command.OPLOCK_BREAK, not_breaking) == NTStatus.UNSUCCESSFUL
    unknown = wo.pack_lease_break_ack(wo.LeaseBreakAck(0, KEY2, R))
    assert await a.status_of(Command.OPLOCK_BREAK, unknown) == NTStatus.OBJECT_NAME_NOT_FOUND
    with pytest.raises(SMBError) as e:
        await _lease_open(a, KEY1, R) if False else await _other_file(a, KEY1)
    assert e.value.status == NTStatus.INVALID_PARAMETER


async def _other_file(c: AsyncClient, key: bytes) -> None:
    lease = wc.pack_lease(wc.Lease(key, R, version=1))
    body = wc.pack_create_request(
        wc.CreateRequest(
            0, wc.OplockLevel.LEASE, 2, 0, 0x1F01FF, 0, 7, wc.CreateDisposition.OPEN_IF, 0,
            "other.vhdx", (wc.CreateContext(wc.CTX_REQUEST_LEASE, memoryview(lease)),),
        )
    )  # fmt: skip
    await c.call(Command.CREATE, body)


async def test_unacknowledged_break_times_out(
    env: tuple[SharedServer, AsyncClient, AsyncClient], autojump_clock: trio.testing.MockClock
) -> None:
    server, a, b = env
    await _lease_open(a, KEY1, R | W | H)
    start = trio.current_time()
    r = await _lease_open(b, KEY2, R)  # nobody acknowledges: 35 s (autojump clock)
    assert trio.current_time() - start == pytest.approx(35.0, abs=0.5)
    assert _granted(r) == R
    mgr = server.files.oplocks
    assert isinstance(mgr, LeaseManager)
    assert mgr.leases[(a.conn.client_guid, KEY1)].state == 0


async def test_write_breaks_other_read_leases(
    env: tuple[SharedServer, AsyncClient, AsyncClient],
) -> None:
    server, a, b = env
    fa = (await _lease_open(a, KEY1, R)).file_id
    await _lease_open(b, KEY2, R)
    w = rw.WriteRequest(memoryview(b"x"), 0, fa, 0, 0, 0)
    await a.call(Command.WRITE, rw.pack_write_request(w))
    (conn, _, body) = server.breaks[-1]
    note = wo.parse_lease_break_notification(body)
    assert conn == b.conn.conn_id and note.lease_key == KEY2
    assert (note.current_state, note.new_state, note.flags) == (R, 0, 0)


async def test_oplock_batch_breaks_to_level_ii(
    env: tuple[SharedServer, AsyncClient, AsyncClient],
) -> None:
    server, a, b = env

    async def open_(c: AsyncClient, level: int) -> wc.CreateResponse:
        body = wc.pack_create_request(
            wc.CreateRequest(
                0, level, 2, 0, 0x1F01FF, 0, 7, wc.CreateDisposition.OPEN_IF, 0, "o.dat", ()
            )
        )  # fmt: skip
        return wc.parse_create_response(body_of(await c.call(Command.CREATE, body)))

    r1 = await open_(a, wc.OplockLevel.BATCH)
    assert r1.oplock_level == wc.OplockLevel.BATCH
    got: list[wc.CreateResponse] = []
    async with trio.open_nursery() as n:
        n.start_soon(lambda: _append(got, open_(b, wc.OplockLevel.BATCH)))
        await until(lambda: server.breaks)
        brk = wo.parse_oplock_break(server.breaks[-1][2])
        assert brk == wo.OplockBreak(wc.OplockLevel.II, r1.file_id)
        ack = wo.pack_oplock_break(wo.OplockBreak(wc.OplockLevel.II, r1.file_id))
        assert (
            wo.parse_oplock_break(body_of(await a.call(Command.OPLOCK_BREAK, ack))).oplock_level
            == 1
        )
    assert got[0].oplock_level == wc.OplockLevel.II
    # acknowledging again is a protocol error
    assert await a.status_of(Command.OPLOCK_BREAK, ack) == NTStatus.INVALID_OPLOCK_PROTOCOL


async def _append(out: list[wc.CreateResponse], aw: object) -> None:
    out.append(await aw)  # type: ignore[misc]
