"""CHANGE_NOTIFY ([MS-SMB2] 3.3.5.19) and the file FSCTLs of IOCTL (3.3.5.15), in process."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from smbd.server.request import Response, SMBError
from smbd.wire import create as wc
from smbd.wire import fsctl as wf
from smbd.wire import ioctl as wio
from smbd.wire import notify as wn
from smbd.wire.constants import Command
from smbd.wire.errors import ParseError
from smbd.wire.fsctl import FsctlCode
from smbd.wire.status import NTStatus
from tests.smbd.files.async_harness import AsyncClient, SharedServer, body_of, until
from tests.smbd.files.harness import make_state

ALL_CHANGES = 0xFFF


@pytest.fixture
def pair(tmp_path: Path) -> tuple[AsyncClient, AsyncClient]:
    root = tmp_path / "share"
    root.mkdir()
    (root / "d").mkdir()
    files, share = make_state(root)
    server = SharedServer(files)
    return AsyncClient(server, share), AsyncClient(server, share)


def _notify(fid: tuple[int, int], length: int = 4096, tree: bool = False) -> bytes:
    return wn.pack_change_notify_request(
        wn.ChangeNotifyRequest(int(tree), length, fid, ALL_CHANGES)
    )


async def _run(c: AsyncClient, command: Command, body: bytes, out: list[Response]) -> None:
    out.append(await c.call(command, body))


async def test_notify_sees_a_create(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, b = pair
    d = (await a.create("d", options=wc.CreateOptions.DIRECTORY_FILE)).file_id
    got: list[Response] = []
    async with trio.open_nursery() as n:
        n.start_soon(_run, a, Command.CHANGE_NOTIFY, _notify(d), got)
        await until(lambda: a.hooks.interim == 1)
        assert not got
        await b.create("d\\new.txt", disposition=wc.CreateDisposition.CREATE)
    entries = wn.parse_notify_entries(wn.parse_change_notify_response(body_of(got[0])))
    assert entries == [wn.NotifyEntry(wn.NotifyAction.ADDED, "new.txt")]


async def test_notify_tree_small_buffer_and_cleanup(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, b = pair
    await b.create("d\\sub", options=wc.CreateOptions.DIRECTORY_FILE)
    d = (await a.create("d", options=wc.CreateOptions.DIRECTORY_FILE)).file_id
    got: list[Response] = []
    async with trio.open_nursery() as n:
        n.start_soon(_run, a, Command.CHANGE_NOTIFY, _notify(d, 4096, tree=True), got)
        await until(lambda: a.hooks.interim == 1)
        await b.create("d\\sub\\x", disposition=wc.CreateDisposition.CREATE)
    entries = wn.parse_notify_entries(wn.parse_change_notify_response(body_of(got[0])))
    assert entries == [wn.NotifyEntry(wn.NotifyAction.ADDED, "sub\\x")]
    # changes between requests are kept; a too small buffer gets NOTIFY_ENUM_DIR
    await b.create("d\\y", disposition=wc.CreateDisposition.CREATE)
    resp = await a.call(Command.CHANGE_NOTIFY, _notify(d, 1, tree=True))
    assert resp.status == NTStatus.NOTIFY_ENUM_DIR
    # closing the directory completes a waiting request with NOTIFY_CLEANUP
    got.clear()
    async with trio.open_nursery() as n:
        n.start_soon(_run, a, Command.CHANGE_NOTIFY, _notify(d), got)
        await until(lambda: a.hooks.interim == 2)
        await a.close(d)
    assert got[0].status == NTStatus.NOTIFY_CLEANUP


def _filtered(fid: tuple[int, int], filter_: int, tree: bool = True) -> bytes:
    return wn.pack_change_notify_request(wn.ChangeNotifyRequest(int(tree), 4096, fid, filter_))


def _entries(resp: Response) -> list[wn.NotifyEntry]:
    assert resp.status == NTStatus.SUCCESS
    return wn.parse_notify_entries(wn.parse_change_notify_response(body_of(resp)))


async def _rename(c: AsyncClient, fid: tuple[int, int], name: str) -> None:
    from smbd.wire import fscc
    from smbd.wire.info import InfoType

    rn = fscc.pack_rename_info(fscc.RenameInfo(True, 0, name))
    assert (await c.set_info(fid, InfoType.FILE, 10, rn)).status == NTStatus.SUCCESS


async def test_notify_rename_events(pair: tuple[AsyncClient, AsyncClient]) -> None:
    """Renames as Windows reports them (smbtorture smb2.notify.rec): OLD_NAME/NEW_NAME
    within a directory, REMOVED/ADDED across directories; no MODIFIED for a watch that
    sees name changes."""
    a, b = pair
    await b.close((await b.create("d\\sub", options=wc.CreateOptions.DIRECTORY_FILE)).file_id)
    d = (await a.create("d", access=0x1, options=wc.CreateOptions.DIRECTORY_FILE)).file_id
    got: list[Response] = []
    async with trio.open_nursery() as n:  # the first request sets up the watch
        n.start_soon(_run, a, Command.CHANGE_NOTIFY, _filtered(d, 0x3 | 0x4 | 0x40), got)
        await until(lambda: a.hooks.interim == 1)
        f = (await b.create("d\\sub\\f", disposition=wc.CreateDisposition.CREATE)).file_id
    await _rename(b, f, "d\\sub\\g")
    await _rename(b, f, "d\\h")
    await b.close(f)
    resp = await a.call(Command.CHANGE_NOTIFY, _filtered(d, 0x3 | 0x4 | 0x40))
    A = wn.NotifyAction
    assert _entries(resp) == [
        wn.NotifyEntry(A.RENAMED_OLD_NAME, "sub\\f"),
        wn.NotifyEntry(A.RENAMED_NEW_NAME, "sub\\g"),
        wn.NotifyEntry(A.REMOVED, "sub\\g"),
        wn.NotifyEntry(A.ADDED, "h"),
    ]


async def test_notify_filter_is_fixed_and_requests_complete_in_order(
    pair: tuple[AsyncClient, AsyncClient],
) -> None:
    """smbtorture smb2.notify.mask-change: the first request's completion filter stays
    with the open; a renamed file is reported MODIFIED to an attributes-only watch; of two
    waiting requests the older gets the first change."""
    a, b = pair
    d = (await a.create("d", access=0x1, options=wc.CreateOptions.DIRECTORY_FILE)).file_id
    got: list[Response] = []
    async with trio.open_nursery() as n:
        n.start_soon(_run, a, Command.CHANGE_NOTIFY, _filtered(d, 0x4), got)  # ATTRIBUTES
        await until(lambda: a.hooks.interim == 1)
        n.start_soon(_run, a, Command.CHANGE_NOTIFY, _filtered(d, ALL_CHANGES, tree=False), got)
        await until(lambda: a.hooks.interim == 2)
        f = (await b.create("d\\f", disposition=wc.CreateDisposition.CREATE)).file_id
        await _rename(b, f, "d\\g")
        await until(lambda: len(got) == 1)
        await _rename(b, f, "d\\h")
        await b.close(f)
    A = wn.NotifyAction
    assert [_entries(r) for r in got] == [
        [wn.NotifyEntry(A.MODIFIED, "g")],
        [wn.NotifyEntry(A.MODIFIED, "h")],
    ]


async def test_notify_keeps_named_streams_out_of_sight(
    pair: tuple[AsyncClient, AsyncClient],
) -> None:
    a, b = pair
    root = (await a.create("", access=0x1, options=wc.CreateOptions.DIRECTORY_FILE)).file_id
    got: list[Response] = []
    async with trio.open_nursery() as n:
        n.start_soon(_run, a, Command.CHANGE_NOTIFY, _filtered(root, ALL_CHANGES), got)
        await until(lambda: a.hooks.interim == 1)
        s = (await b.create("f:s", disposition=wc.CreateDisposition.CREATE)).file_id
        await b.write(s, 0, b"data")
        await b.set_info(s, 1, 13, b"\x01")  # delete the stream
        await b.close(s)
        await b.create("g", disposition=wc.CreateDisposition.CREATE)
    # the stream's creation, write and deletion are no directory entries' changes
    assert _entries(got[0]) == [wn.NotifyEntry(wn.NotifyAction.ADDED, "g")]


async def test_notify_on_a_file_is_invalid(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, _ = pair
    f = (await a.create("f")).file_id
    assert await a.status_of(Command.CHANGE_NOTIFY, _notify(f)) == NTStatus.INVALID_PARAMETER


def _ioctl(code: int, fid: tuple[int, int], data: bytes = b"", max_out: int = 4096) -> bytes:
    return wio.pack_ioctl_request(code, fid, data, max_output_response=max_out)


async def test_copychunk(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, _ = pair
    src = (await a.create("src")).file_id
    dst = (await a.create("dst")).file_id
    await a.write(src, 0, bytes(range(256)) * 64)  # 16 KiB
    key_out = wio.parse_ioctl_response(
        body_of(await a.call(Command.IOCTL, _ioctl(FsctlCode.FSCTL_SRV_REQUEST_RESUME_KEY, src)))
    ).output
    key = wf.parse_resume_key_response(key_out)
    chunks = (wf.Chunk(0, 4096, 8192), wf.Chunk(8192, 0, 4096))
    body = _ioctl(
        FsctlCode.FSCTL_SRV_COPYCHUNK_WRITE,
        dst,
        wf.pack_copychunk_request(wf.CopyChunkRequest(key, chunks)),
    )
    out = wio.parse_ioctl_response(body_of(await a.call(Command.IOCTL, body))).output
    assert wf.parse_copychunk_response(out) == wf.CopyChunkResponse(2, 0, 12288)
    data = await a.read(dst, 0, 16384)
    assert data[:4096] == (bytes(range(256)) * 16) and data[4096:12288] == (bytes(range(256)) * 32)
    # over the limits: INVALID_PARAMETER with the server's limits in the response
    too_many = wf.CopyChunkRequest(key, tuple(wf.Chunk(0, 0, 1) for _ in range(257)))
    body = _ioctl(FsctlCode.FSCTL_SRV_COPYCHUNK_WRITE, dst, wf.pack_copychunk_request(too_many))
    resp = await a.call(Command.IOCTL, body)
    assert resp.status == NTStatus.INVALID_PARAMETER
    out = wio.parse_ioctl_response(body_of(resp)).output
    assert wf.parse_copychunk_response(out) == wf.CopyChunkResponse(256, 1 << 20, 16 << 20)
    # a source range past the end copies nothing more and says so
    past = wf.CopyChunkRequest(key, (wf.Chunk(0, 0, 10), wf.Chunk(16380, 0, 10)))
    body = _ioctl(FsctlCode.FSCTL_SRV_COPYCHUNK_WRITE, dst, wf.pack_copychunk_request(past))
    resp = await a.call(Command.IOCTL, body)
    assert resp.status == NTStatus.VIEW_SIZE
    out = wio.parse_ioctl_response(body_of(resp)).output
    assert wf.parse_copychunk_response(out) == wf.CopyChunkResponse(1, 0, 10)
    bad_key = wf.CopyChunkRequest(bytes(24), chunks)
    body = _ioctl(FsctlCode.FSCTL_SRV_COPYCHUNK_WRITE, dst, wf.pack_copychunk_request(bad_key))
    assert await a.status_of(Command.IOCTL, body) == NTStatus.OBJECT_NAME_NOT_FOUND


async def test_sparse_zero_data_and_allocated_ranges(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, _ = pair
    f = (await a.create("s")).file_id
    await a.write(f, 0, b"x" * (1 << 20))
    assert (await a.call(Command.IOCTL, _ioctl(FsctlCode.FSCTL_SET_SPARSE, f))).status == 0
    zero = wf.pack_zero_data(wf.ZeroDataInformation(0, 1 << 20))
    assert (await a.call(Command.IOCTL, _ioctl(FsctlCode.FSCTL_SET_ZERO_DATA, f, zero))).status == 0
    await a.write(f, (1 << 20) - 4096, b"y" * 4096)
    qar = wf.pack_allocated_ranges([wf.AllocatedRange(0, 1 << 20)])
    resp = await a.call(Command.IOCTL, _ioctl(FsctlCode.FSCTL_QUERY_ALLOCATED_RANGES, f, qar))
    ranges = wf.parse_allocated_ranges(wio.parse_ioctl_response(body_of(resp)).output)
    assert ranges and ranges[-1].file_offset + ranges[-1].length == 1 << 20
    assert sum(r.length for r in ranges) < 1 << 20  # the zeroed part is a hole again
    assert await a.read(f, 0, 4) == bytes(4)


async def test_ioctl_errors(pair: tuple[AsyncClient, AsyncClient]) -> None:
    a, _ = pair
    f = (await a.create("e")).file_id
    assert await a.status_of(Command.IOCTL, _ioctl(0x00090123, f)) == (
        NTStatus.INVALID_DEVICE_REQUEST
    )
    not_fsctl = wio.pack_ioctl_request(FsctlCode.FSCTL_SET_SPARSE, f, b"", flags=0)
    assert await a.status_of(Command.IOCTL, not_fsctl) == NTStatus.NOT_SUPPORTED
    short = _ioctl(FsctlCode.FSCTL_SET_ZERO_DATA, f, bytes(8))
    with pytest.raises(ParseError) as e:  # the core answers a ParseError with its status
        await a.call(Command.IOCTL, short)
    assert e.value.status == NTStatus.INVALID_PARAMETER
    with pytest.raises(SMBError):
        await a.call(Command.IOCTL, _ioctl(FsctlCode.FSCTL_SRV_REQUEST_RESUME_KEY, f, max_out=8))
