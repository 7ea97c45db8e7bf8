"""Requests processed in the connection's receive loop ([MS-SMB2] 3.3.5.2, 3.3.5.12-13).

A request alone in its message, on direct TCP, that waits for nothing but the send of its
response (ECHO, QUERY_INFO, CLOSE) runs in the receive loop instead of a task of its own;
so does a READ whose data the page cache holds, read before it is handled
(``smbd.server.files.readwrite.preread``), and a WRITE the backend would write on the
event loop (``write_now``). These tests check that such requests still get every check,
that the data read early is used only for that READ, that the buffers it took go back to
the pool either way, and which requests keep their tasks."""

from __future__ import annotations

import os
import struct

import pytest

from smbd import crypto
from smbd.server.files import readwrite
from smbd.server.files.state import FileServerState
from smbd.transport.buffers import POOL
from smbd.wire import close as wclose
from smbd.wire import create as wc
from smbd.wire import info, rw
from smbd.wire.constants import Command
from smbd.wire.status import NTStatus
from tests.smbd.server.conftest import Running
from tests.smbd.server.rawclient import RawClient

GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
FILE_SHARE_ALL = 0x7


async def _open(
    c: RawClient,
    tid: int,
    name: str,
    access: int = GENERIC_READ,
    disposition: int = wc.CreateDisposition.OPEN,
) -> tuple[int, int]:
    body = wc.pack_create_request(
        wc.CreateRequest(
            security_flags=0,
            requested_oplock_level=0,
            impersonation_level=2,
            smb_create_flags=0,
            desired_access=access,
            file_attributes=0,
            share_access=FILE_SHARE_ALL,
            create_disposition=disposition,
            create_options=0x40,  # NON_DIRECTORY_FILE
            name=name,
            contexts=(),
        )
    )
    r = await c.call(Command.CREATE, body, tree_id=tid)
    assert r.status == NTStatus.SUCCESS, hex(r.status)
    return wc.parse_create_response(r.body).file_id


def _read(file_id: tuple[int, int], offset: int, length: int) -> bytes:
    return rw.pack_read_request(
        rw.ReadRequest(
            padding=0x50,
            flags=0,
            length=length,
            offset=offset,
            file_id=file_id,
            minimum_count=0,
            channel=0,
            remaining_bytes=0,
        )
    )


def _count_prereads(monkeypatch: pytest.MonkeyPatch, smb: Running) -> list[object | None]:
    """Record what each preread the server makes returns (None: it did not have the data)."""
    seen: list[object | None] = []
    real = smb.server.preread
    assert real is readwrite.preread

    def spy(files: FileServerState, body: memoryview) -> object:
        pre = real(files, body)
        seen.append(pre)
        return pre

    monkeypatch.setattr(smb.server, "preread", spy)
    return seen


async def test_cached_read_is_answered_inline_with_the_right_data(
    smb: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(200_000)
    (smb.root / "f.bin").write_bytes(data)  # just written: in the page cache
    seen = _count_prereads(monkeypatch, smb)
    c = await smb.session()
    tid = (await c.tree_connect(r"\\x\share", credits=256)).header.tree_id
    fid = await _open(c, tid, "f.bin")
    r = await c.call(Command.READ, _read(fid, 1000, 65536), tree_id=tid, credit_charge=1)
    assert r.status == NTStatus.SUCCESS
    assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)
    assert rw.parse_read_response(r.body).data == data[1000 : 1000 + 65536]
    # the end of the file: a short read is all there is, still from the cache
    r = await c.call(Command.READ, _read(fid, 190_000, 65536), tree_id=tid, credit_charge=1)
    assert rw.parse_read_response(r.body).data == data[190_000:]
    # past the end: END_OF_FILE, as from a task
    r = await c.call(Command.READ, _read(fid, 300_000, 4096), tree_id=tid)
    assert r.status == NTStatus.END_OF_FILE
    assert all(isinstance(p, readwrite.PreRead) and p.taken for p in seen)
    assert len(seen) == 3


async def test_early_read_buffers_go_back_to_the_pool_once_sent(
    smb: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A READ answered from data read early sends a slice of the preread's buffer; once
    that is sent, nothing may still refer to the buffer, or the pool cannot take it back
    and every READ pays for a fresh one (its zeroing and page faults)."""
    size = 128 * 1024  # pooled: buffers this large come from the pool
    data = os.urandom(size)
    (smb.root / "f.bin").write_bytes(data)
    seen = _count_prereads(monkeypatch, smb)
    c = await smb.session()
    tid = (await c.tree_connect(r"\\x\share", credits=256)).header.tree_id
    fid = await _open(c, tid, "f.bin")
    reused = POOL.reused
    for _ in range(6):
        r = await c.call(Command.READ, _read(fid, 0, size), tree_id=tid, credit_charge=2)
        assert r.status == NTStatus.SUCCESS
        assert rw.parse_read_response(r.body).data == data
    assert len(seen) == 6
    # the first READ may need a new buffer; every one after it reuses the one sent before
    assert POOL.reused - reused >= 5
    assert all(isinstance(p, readwrite.PreRead) and p.taken and p.buf is None for p in seen)


async def test_early_data_is_only_used_for_the_open_that_may_read_it(
    smb: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preread picks the open by the request's FileId before any check; a READ of
    another session's open still gets FILE_CLOSED and no byte of it, and the buffer the
    preread took goes back."""
    size = 128 * 1024  # pooled buffers: a READ this large takes one from the pool
    (smb.root / "secret.bin").write_bytes(b"s" * size)
    seen = _count_prereads(monkeypatch, smb)  # connections take it when they start
    owner = await smb.session()
    tid = (await owner.tree_connect(r"\\x\share", credits=64)).header.tree_id
    fid = await _open(owner, tid, "secret.bin")
    other = await smb.session()
    otid = (await other.tree_connect(r"\\x\share", credits=64)).header.tree_id
    r = await other.call(Command.READ, _read(fid, 0, size), tree_id=otid, credit_charge=2)
    assert r.status == NTStatus.FILE_CLOSED
    assert b"s" * 16 not in r.raw
    (pre,) = seen  # the data was read early ...
    assert isinstance(pre, readwrite.PreRead) and not pre.taken and pre.buf is not None
    with pytest.raises(ValueError):  # ... and its buffer handed back to the pool unused
        len(pre.buf)
    # the owner still reads it (and a CLOSE ends the open for both)
    r = await owner.call(Command.READ, _read(fid, 0, size), tree_id=tid, credit_charge=2)
    assert rw.parse_read_response(r.body).data == b"s" * size
    body = wclose.pack_close_request(wclose.CloseRequest(flags=0, file_id=fid))
    assert (await owner.call(Command.CLOSE, body, tree_id=tid)).status == NTStatus.SUCCESS
    r = await owner.call(Command.READ, _read(fid, 0, size), tree_id=tid, credit_charge=2)
    assert r.status == NTStatus.FILE_CLOSED
    assert len(seen) == 3 and seen[2] is None, seen  # after the CLOSE: no open


async def test_reads_the_cache_does_not_hold_take_a_task(
    smb: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No preread for what it cannot read at once: an RDMA channel, an unknown FileId, a
    read larger than what is read on the event loop; those READs are answered as ever."""
    data = os.urandom(3 << 20)
    (smb.root / "big.bin").write_bytes(data)
    seen = _count_prereads(monkeypatch, smb)
    c = await smb.session()
    tid = (await c.tree_connect(r"\\x\share", credits=256)).header.tree_id
    fid = await _open(c, tid, "big.bin")
    r = await c.call(Command.READ, _read(fid, 0, 2 << 20), tree_id=tid, credit_charge=32)
    assert rw.parse_read_response(r.body).data == data[: 2 << 20]
    r = await c.call(Command.READ, _read((7, 7), 0, 4096), tree_id=tid)
    assert r.status == NTStatus.FILE_CLOSED
    assert seen == [None, None]


async def test_requests_that_wait_for_nothing_run_in_the_receive_loop(smb: Running) -> None:
    (smb.root / "f.txt").write_bytes(b"hello")
    c = await smb.session()
    tid = (await c.tree_connect(r"\\x\share")).header.tree_id
    (proc,) = smb.server.processors.values()  # this test's one connection
    fid = await _open(c, tid, "f.txt")  # CREATE may wait for lease breaks: a task
    assert proc.statistics()["inline"] == 0
    assert (await c.call(Command.ECHO, b"\x04\x00\x00\x00")).status == NTStatus.SUCCESS
    q = info.pack_query_info_request(
        info.QueryInfoRequest(1, 5, 4096, memoryview(b""), 0, 0, fid)  # FileStandardInformation
    )
    r = await c.call(Command.QUERY_INFO, q, tree_id=tid)
    assert r.status == NTStatus.SUCCESS
    assert struct.unpack_from("<q", info.parse_query_info_response(r.body), 8)[0] == 5
    body = wclose.pack_close_request(wclose.CloseRequest(flags=0, file_id=fid))
    assert (await c.call(Command.CLOSE, body, tree_id=tid)).status == NTStatus.SUCCESS
    assert proc.statistics()["inline"] == 3
    # a QUERY_INFO of the closed open is still answered, with its error, signed
    r = await c.call(Command.QUERY_INFO, q, tree_id=tid)
    assert r.status == NTStatus.FILE_CLOSED
    assert crypto.verify(c.signing_algorithm, c.signing_key, r.raw)
    assert proc.statistics()["inline"] == 4


async def _open_rw(c: RawClient, tid: int, name: str) -> tuple[int, int]:
    return await _open(c, tid, name, GENERIC_READ | GENERIC_WRITE, wc.CreateDisposition.OPEN_IF)


def _write(file_id: tuple[int, int], offset: int, data: bytes, flags: int = 0) -> bytes:
    return b"".join(
        bytes(p)
        for p in rw.pack_write_request(
            rw.WriteRequest(memoryview(data), offset, file_id, 0, 0, flags)
        )
    )


async def test_writes_written_on_the_event_loop_run_in_the_receive_loop(smb: Running) -> None:
    c = await smb.session()
    tid = (await c.tree_connect(r"\\x\share", credits=64)).header.tree_id
    (proc,) = smb.server.processors.values()
    fid = await _open_rw(c, tid, "w.bin")
    before = proc.inline
    r = await c.call(Command.WRITE, _write(fid, 0, b"a" * 4096), tree_id=tid)
    assert r.status == NTStatus.SUCCESS
    assert rw.parse_write_response(r.body)[0] == 4096
    assert proc.inline == before + 1
    # write-through: fdatasync in a lane's thread, so a task of its own
    r = await c.call(Command.WRITE, _write(fid, 4096, b"b" * 10, flags=1), tree_id=tid)
    assert r.status == NTStatus.SUCCESS
    assert proc.inline == before + 1
    # another session's open: refused by the same checks, nothing written
    other = await smb.session()
    otid = (await other.tree_connect(r"\\x\share")).header.tree_id
    r = await other.call(Command.WRITE, _write(fid, 0, b"x" * 4096), tree_id=otid)
    assert r.status == NTStatus.FILE_CLOSED
    assert (smb.root / "w.bin").read_bytes() == b"a" * 4096 + b"b" * 10
    # a second open of the file: a write may have to break its caching, which is a send
    # to a client that may be slow to read, so the write keeps its task
    await _open_rw(other, otid, "w.bin")
    r = await c.call(Command.WRITE, _write(fid, 0, b"c" * 10), tree_id=tid)
    assert r.status == NTStatus.SUCCESS
    assert proc.inline == before + 1
    assert (smb.root / "w.bin").read_bytes()[:12] == b"c" * 10 + b"aa"
