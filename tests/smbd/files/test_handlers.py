"""The file handlers in process ([MS-SMB2] 3.3.5.9 CREATE ... 3.3.5.21 SET_INFO)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from smbd.server.request import SMBError
from smbd.wire import create as wc
from smbd.wire import fscc
from smbd.wire import info as wi
from smbd.wire.constants import Command
from smbd.wire.info import InfoType
from smbd.wire.status import NTStatus

from .harness import Client, body_bytes, make_state

D = wc.CreateDisposition
Opt = wc.CreateOptions
READ, WRITE, DELETE = 0x1, 0x2, 0x10000
ATTRS = 0x80


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "share"
    r.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"secret")
    return r


async def test_create_write_read_close(root: Path) -> None:
    files, share = make_state(root)
    c = Client(files, share)
    r = await c.create("a.txt", disposition=D.CREATE)
    assert r.create_action == wc.CreateAction.CREATED
    assert r.file_attributes & fscc.FileAttributes.ARCHIVE
    assert await c.write(r.file_id, 0, b"hello world") == 11
    assert await c.read(r.file_id, 6, 100) == b"world"
    assert await c.status_of(Command.READ, _read_body(r.file_id, 11, 10)) == NTStatus.END_OF_FILE
    assert await c.status_of(Command.READ, _read_body(r.file_id, 0, 10, 20)) == NTStatus.END_OF_FILE
    cl = await c.close(r.file_id, postquery=True)
    assert cl.end_of_file == 11 and cl.flags == 1
    assert (root / "a.txt").read_bytes() == b"hello world"
    with pytest.raises(SMBError) as ei:
        await c.close(r.file_id)
    assert ei.value.status == NTStatus.FILE_CLOSED
    stats = files.share_statistics()
    assert stats[0]["bytes_written"] == 11 and stats[0]["bytes_read"] == 5 + 0
    assert stats[0]["ops"] >= 5


def _read_body(fid: tuple[int, int], offset: int, length: int, minimum: int = 0) -> bytes:
    from smbd.wire import rw

    return b"".join(
        bytes(p)
        for p in [rw.pack_read_request(rw.ReadRequest(0, 0, length, offset, fid, minimum, 0, 0))]
    )


async def test_dispositions_and_contexts(root: Path) -> None:
    files, share = make_state(root)
    c = Client(files, share)
    assert await c.create_status("x", disposition=D.OPEN) == NTStatus.OBJECT_NAME_NOT_FOUND
    r = await c.create(
        "x",
        disposition=D.CREATE,
        contexts=((wc.CTX_QUERY_MAXIMAL_ACCESS, b""), (wc.CTX_QUERY_ON_DISK_ID, b"")),
    )
    ctx = dict(r.contexts)
    assert wc.parse_mxac_response(ctx[wc.CTX_QUERY_MAXIMAL_ACCESS]) == (0, 0x001F01FF)
    assert (
        wc.parse_qfid_response(ctx[wc.CTX_QUERY_ON_DISK_ID]).disk_file_id
        == os.stat(root / "x").st_ino
    )
    await c.write(r.file_id, 0, b"data")
    await c.close(r.file_id)
    assert await c.create_status("x", disposition=D.CREATE) == NTStatus.OBJECT_NAME_COLLISION
    r = await c.create("x", disposition=D.OVERWRITE_IF)
    assert r.create_action == wc.CreateAction.OVERWRITTEN and r.end_of_file == 0
    await c.close(r.file_id)
    r = await c.create("x", disposition=D.SUPERSEDE)
    assert r.create_action == wc.CreateAction.SUPERSEDED
    await c.close(r.file_id)
    d = await c.create("dir", disposition=D.CREATE, options=Opt.DIRECTORY_FILE)
    assert d.file_attributes & fscc.FileAttributes.DIRECTORY
    assert (
        await c.create_status("dir", options=Opt.NON_DIRECTORY_FILE) == NTStatus.FILE_IS_A_DIRECTORY
    )
    assert await c.create_status("x", options=Opt.DIRECTORY_FILE) == NTStatus.NOT_A_DIRECTORY
    assert await c.create_status("x", options=0x00100000) == NTStatus.NOT_SUPPORTED
    assert await c.create_status("x", disposition=7) == NTStatus.INVALID_PARAMETER
    assert await c.create_status("x", access=0) == NTStatus.ACCESS_DENIED


@pytest.mark.parametrize(
    "name",
    [
        "..\\outside\\secret",
        "dir\\..\\..\\outside\\secret",
        "\\outside",
        "a\0b",
        "esc\\secret",
        "link",
    ],
)
async def test_no_escape(root: Path, name: str) -> None:
    (root / "esc").symlink_to(root.parent / "outside")
    (root / "link").symlink_to(root.parent / "outside" / "secret")
    files, share = make_state(root)
    c = Client(files, share)
    for disp in (D.OPEN, D.OPEN_IF, D.OVERWRITE_IF, D.CREATE):
        status = await c.create_status(name, disposition=disp)
        assert status in (
            NTStatus.OBJECT_NAME_INVALID,
            NTStatus.INVALID_PARAMETER,
            NTStatus.OBJECT_PATH_NOT_FOUND,
            NTStatus.ACCESS_DENIED,
            NTStatus.OBJECT_NAME_COLLISION,
        )
    assert (root.parent / "outside" / "secret").read_bytes() == b"secret"
    assert sorted(os.listdir(root.parent / "outside")) == ["secret"]


async def test_sharing_violation_does_not_truncate(root: Path) -> None:
    (root / "f").write_bytes(b"precious")
    files, share = make_state(root)
    a, b = Client(files, share), Client(files, share)
    r = await a.create("f", access=READ, share=0x1)  # readers only
    assert await b.create_status("f", access=WRITE, share=0x7) == NTStatus.SHARING_VIOLATION
    assert (
        await b.create_status("f", access=READ, share=0x7, disposition=D.OVERWRITE)
        == NTStatus.SHARING_VIOLATION
    )
    assert (root / "f").read_bytes() == b"precious"
    r2 = await b.create("f", access=READ, share=0x3)
    r3 = await b.create("f", access=ATTRS, share=0)  # attribute-only opens take no part
    for fid in (r2.file_id, r3.file_id, r.file_id):
        await (b if fid != r.file_id else a).close(fid)
    r4 = await b.create("f", access=WRITE, share=0x7)
    await b.close(r4.file_id)
    assert not files.opens and not files.files


async def test_delete_on_close_and_delete_pending(root: Path) -> None:
    files, share = make_state(root)
    c = Client(files, share)
    r = await c.create("tmp", disposition=D.CREATE, options=Opt.DELETE_ON_CLOSE)
    r2 = await c.create("tmp", disposition=D.OPEN)
    await c.close(r.file_id)
    assert await c.create_status("tmp") == NTStatus.DELETE_PENDING
    assert (root / "tmp").exists()
    await c.close(r2.file_id)
    assert not (root / "tmp").exists()
    assert (
        await c.create_status("tmp2", access=READ, options=Opt.DELETE_ON_CLOSE)
        == NTStatus.ACCESS_DENIED
    )


async def test_set_info_disposition_rename_eof(root: Path) -> None:
    files, share = make_state(root)
    c = Client(files, share)
    d = await c.create("d", disposition=D.CREATE, options=Opt.DIRECTORY_FILE)
    f = await c.create("d\\f", disposition=D.CREATE)
    # a non-empty directory cannot be marked for deletion, nor renamed with files open below
    st = await c.status_of(Command.SET_INFO, _set(d.file_id, 13, b"\x01"))
    assert st == NTStatus.DIRECTORY_NOT_EMPTY
    rn = fscc.pack_rename_info(fscc.RenameInfo(False, 0, "e"))
    assert await c.status_of(Command.SET_INFO, _set(d.file_id, 10, rn)) == NTStatus.ACCESS_DENIED
    await c.close(d.file_id)  # an open parent with DELETE access would refuse renames below
    # end of file
    await c.set_info(f.file_id, InfoType.FILE, 20, struct.pack("<Q", 1 << 20))
    assert os.stat(root / "d" / "f").st_size == 1 << 20
    # rename across directories, then onto an existing name with and without replace
    (root / "g").write_bytes(b"g")
    rn = fscc.pack_rename_info(fscc.RenameInfo(False, 0, "\\g"))
    assert (
        await c.status_of(Command.SET_INFO, _set(f.file_id, 10, rn))
        == NTStatus.OBJECT_NAME_COLLISION
    )
    rn = fscc.pack_rename_info(fscc.RenameInfo(True, 0, "g"))
    await c.set_info(f.file_id, InfoType.FILE, 10, rn)
    assert os.stat(root / "g").st_size == 1 << 20 and not (root / "d" / "f").exists()
    name = body_bytes(await c.query_info(f.file_id, InfoType.FILE, 9))
    assert name[12:].decode("utf-16-le") == "\\g"
    # delete via disposition
    await c.set_info(f.file_id, InfoType.FILE, 13, b"\x01")
    std = body_bytes(await c.query_info(f.file_id, InfoType.FILE, 5))
    assert std[8 + 20] == 1  # DeletePending
    await c.close(f.file_id)
    assert not (root / "g").exists()
    d = await c.create("d", options=Opt.DIRECTORY_FILE)
    await c.set_info(d.file_id, InfoType.FILE, 13, b"\x01")
    await c.close(d.file_id)
    assert os.listdir(root) == []


def _set(fid: tuple[int, int], cls: int, data: bytes) -> bytes:
    from smbd.wire import info as wi

    return wi.pack_set_info_request(wi.SetInfoRequest(1, cls, memoryview(data), 0, fid))


async def test_query_directory(root: Path) -> None:
    for n in ("a.txt", "b.txt", "c.dat"):
        (root / n).write_bytes(n.encode())
    (root / "esc").symlink_to("/")
    files, share = make_state(root)
    c = Client(files, share)
    d = await c.create("", access=READ)
    out = body_bytes(await c.query_dir(d.file_id))
    names = fscc.parse_directory_names(37, out[8:])
    assert names[:2] == [".", ".."] and sorted(names[2:]) == ["a.txt", "b.txt", "c.dat"]
    assert await c.status_of(Command.QUERY_DIRECTORY, _qd(d.file_id, "*")) == NTStatus.NO_MORE_FILES
    # restart with a pattern, one entry at a time
    got = []
    flags = 0x01
    while True:
        try:
            resp = await c.query_dir(d.file_id, "*.TXT", flags=flags | 0x02)
        except SMBError as exc:
            assert exc.status == NTStatus.NO_MORE_FILES
            break
        flags = 0
        got += fscc.parse_directory_names(37, body_bytes(resp)[8:])
    assert sorted(got) == ["a.txt", "b.txt"]
    # a small buffer pages through everything
    d2 = await c.create("", access=READ)
    seen = []
    while True:
        try:
            resp = await c.query_dir(d2.file_id, "*", limit=150, cls=1)
        except SMBError as exc:
            assert exc.status == NTStatus.NO_MORE_FILES
            break
        seen += fscc.parse_directory_names(1, body_bytes(resp)[8:])
    assert sorted(seen) == [".", "..", "a.txt", "b.txt", "c.dat"]
    d3 = await c.create("", access=READ)
    assert (
        await c.status_of(Command.QUERY_DIRECTORY, _qd(d3.file_id, "zz*")) == NTStatus.NO_SUCH_FILE
    )
    assert await c.status_of(Command.QUERY_DIRECTORY, _qd(d3.file_id, "*", 60)) == (
        NTStatus.NO_MORE_FILES
    )
    d4 = await c.create("", access=READ)
    assert await c.status_of(Command.QUERY_DIRECTORY, _qd(d4.file_id, "*", 60)) == (
        NTStatus.INFO_LENGTH_MISMATCH
    )


def _qd(fid: tuple[int, int], pattern: str, limit: int = 65536) -> bytes:
    from smbd.wire import query_directory as wq

    return wq.pack_query_directory_request(wq.QueryDirectoryRequest(37, 0, 0, fid, pattern, limit))


async def test_query_info_classes(root: Path) -> None:
    files, share = make_state(root)
    c = Client(files, share)
    r = await c.create("f", disposition=D.CREATE)
    await c.write(r.file_id, 0, b"x" * 5000)
    for cls in (4, 5, 6, 7, 8, 9, 14, 16, 17, 18, 22, 28, 34, 35, 59):
        resp = await c.query_info(r.file_id, InfoType.FILE, cls)
        assert resp.status == NTStatus.SUCCESS, cls
    all_info = body_bytes(await c.query_info(r.file_id, InfoType.FILE, 18))[8:]
    assert struct.unpack_from("<Q", all_info, 48)[0] == 5000  # Standard.EndOfFile
    short = await c.query_info(r.file_id, InfoType.FILE, 18, limit=104)  # name is "\\f"
    assert short.status == NTStatus.SUCCESS
    long = await c.create("a_longer_name.txt", disposition=D.CREATE)
    short = await c.query_info(long.file_id, InfoType.FILE, 18, limit=110)
    assert short.status == NTStatus.BUFFER_OVERFLOW and len(body_bytes(short)) == 8 + 110
    alt = body_bytes(await c.query_info(long.file_id, InfoType.FILE, 21))[12:]
    assert alt.decode("utf-16-le").startswith("A_LO~")
    assert (
        await c.status_of(Command.QUERY_INFO, _qi(r.file_id, 4, 39))
        == NTStatus.INFO_LENGTH_MISMATCH
    )
    assert await c.status_of(Command.QUERY_INFO, _qi(r.file_id, 250)) == NTStatus.INVALID_INFO_CLASS
    for cls in (1, 3, 4, 5, 7, 11):
        assert (await c.query_info(r.file_id, InfoType.FILESYSTEM, cls)).status == NTStatus.SUCCESS
    attr = body_bytes(await c.query_info(r.file_id, InfoType.FILESYSTEM, 5))[8:]
    assert attr[12:].decode("utf-16-le") == "NTFS"
    sd = body_bytes(await c.query_info(r.file_id, InfoType.SECURITY, 0, addl=0x7))[8:]
    assert fscc.parse_security_descriptor(sd).dacl_ace_count == 1
    with pytest.raises(SMBError) as ei:
        await c.query_info(r.file_id, InfoType.SECURITY, 0, limit=8, addl=0x7)
    assert ei.value.status == NTStatus.BUFFER_TOO_SMALL
    assert struct.unpack("<I", ei.value.error_data)[0] == len(sd)


def _qi(fid: tuple[int, int], cls: int, limit: int = 65536) -> bytes:
    from smbd.wire import info as wi

    return wi.pack_query_info_request(
        wi.QueryInfoRequest(1, cls, limit, memoryview(b""), 0, 0, fid)
    )


async def test_basic_info_times_and_attributes(root: Path) -> None:
    files, share = make_state(root)
    c = Client(files, share)
    r = await c.create("f", disposition=D.CREATE)
    t = 133_000_000_000_000_000
    info = fscc.pack_basic_info(fscc.BasicInfo(t, t, t, 0, fscc.FileAttributes.HIDDEN))
    await c.set_info(r.file_id, InfoType.FILE, 4, info)
    got = fscc.parse_basic_info(body_bytes(await c.query_info(r.file_id, InfoType.FILE, 4))[8:])
    assert got.creation_time == t and got.last_write_time == t and got.last_access_time == t
    assert got.file_attributes == fscc.FileAttributes.HIDDEN


async def test_read_only_share(root: Path) -> None:
    (root / "f").write_bytes(b"ro")
    files, share = make_state(root, read_only=True)
    c = Client(files, share)
    assert await c.create_status("f", access=WRITE) == NTStatus.ACCESS_DENIED
    assert await c.create_status("new", access=READ, disposition=D.CREATE) == NTStatus.ACCESS_DENIED
    r = await c.create("f", access=0x02000000)  # MAXIMUM_ALLOWED
    assert await c.read(r.file_id, 0, 10) == b"ro"
    assert await c.status_of(Command.WRITE, _write(r.file_id)) == NTStatus.ACCESS_DENIED


def _write(fid: tuple[int, int]) -> bytes:
    from smbd.wire import rw

    return b"".join(
        bytes(p) for p in rw.pack_write_request(rw.WriteRequest(memoryview(b"x"), 0, fid, 0, 0, 0))
    )


async def test_lifecycle_and_open_list(root: Path) -> None:
    files, share = make_state(root)
    a, b = Client(files, share), Client(files, share)
    ra = await a.create("a", disposition=D.CREATE, options=Opt.DELETE_ON_CLOSE)
    rb = await b.create("b", disposition=D.CREATE)
    assert {o["path"] for o in files.open_list()} == {"a", "b"}
    # another session's FileId is not usable
    assert await b.status_of(Command.READ, _read_body(ra.file_id, 0, 1)) == NTStatus.FILE_CLOSED
    files.close_tree(a.tree)
    assert not (root / "a").exists()  # delete-on-close ran on teardown
    assert [o["path"] for o in files.open_list()] == ["b"]
    files.connection_lost(b.conn)
    assert files.open_list() == []
    assert await b.status_of(Command.READ, _read_body(rb.file_id, 0, 1)) == NTStatus.FILE_CLOSED


async def test_write_through_and_flush(root: Path) -> None:
    files, share = make_state(root)
    c = Client(files, share)
    r = await c.create("f", disposition=D.CREATE, options=Opt.WRITE_THROUGH)
    assert await c.write(r.file_id, 0, b"durable", flags=1) == 7
    resp = await c.call(Command.FLUSH, struct.pack("<HHIQQ", 24, 0, 0, *r.file_id))
    assert resp.status == NTStatus.SUCCESS
    ro = await c.create("f", access=READ)
    assert await c.status_of(Command.FLUSH, struct.pack("<HHIQQ", 24, 0, 0, *ro.file_id)) == (
        NTStatus.ACCESS_DENIED
    )


async def test_durable_v2_reconnect(root: Path) -> None:
    """[MS-SMB2] 3.3.5.9.10 / 3.3.5.9.12: a durable open survives its session and is
    reclaimed by DH2C with the same CreateGuid; anything else does not find it."""
    files, share = make_state(root, continuous_availability=True)
    a = Client(files, share)
    guid = os.urandom(16)
    dh2q = wc.pack_durable_v2_request(wc.DurableV2Request(0, wc.DurableV2Flags.PERSISTENT, guid))
    r = await a.create(
        "vm.vhdx", disposition=D.CREATE, contexts=((wc.CTX_DURABLE_HANDLE_REQUEST_V2, dh2q),)
    )
    timeout, flags = wc.parse_durable_v2_response(
        dict(r.contexts)[wc.CTX_DURABLE_HANDLE_REQUEST_V2]
    )
    assert flags == wc.DurableV2Flags.PERSISTENT and timeout == 60_000
    await a.write(r.file_id, 0, b"disk")
    files.connection_lost(a.conn)
    assert files.open_list()[0]["durable"] is True
    b = Client(files, share)
    assert await b.status_of(Command.READ, _read_body(r.file_id, 0, 4)) == NTStatus.FILE_CLOSED
    bad = wc.pack_durable_v2_reconnect(wc.DurableV2Reconnect(r.file_id, os.urandom(16), 0))
    assert (
        await b.create_status("vm.vhdx", contexts=((wc.CTX_DURABLE_HANDLE_RECONNECT_V2, bad),))
        == NTStatus.OBJECT_NAME_NOT_FOUND
    )
    good = wc.pack_durable_v2_reconnect(wc.DurableV2Reconnect(r.file_id, guid, 0))
    r2 = await b.create("vm.vhdx", contexts=((wc.CTX_DURABLE_HANDLE_RECONNECT_V2, good),))
    assert r2.file_id == r.file_id and r2.create_action == wc.CreateAction.OPENED
    assert await b.read(r.file_id, 0, 4) == b"disk"
    # a reconnected open cannot be reclaimed twice, and goes away after its timeout
    assert (
        await b.create_status("vm.vhdx", contexts=((wc.CTX_DURABLE_HANDLE_RECONNECT_V2, good),))
        == NTStatus.OBJECT_NAME_NOT_FOUND
    )
    files.close_session(b.session)
    assert files.scavenge() == 0
    files.clock = lambda: 61.0
    assert files.scavenge() == 1
    assert files.open_list() == []


async def test_durable_request_without_handle_caching_is_not_granted(root: Path) -> None:
    files, share = make_state(root)
    c = Client(files, share)
    r = await c.create(
        "f", disposition=D.CREATE, contexts=((wc.CTX_DURABLE_HANDLE_REQUEST, bytes(16)),)
    )
    assert wc.CTX_DURABLE_HANDLE_REQUEST not in dict(r.contexts)
    files.connection_lost(c.conn)
    assert files.open_list() == []


async def test_app_instance_id_closes_the_other_clients_open(root: Path) -> None:
    """[MS-SMB2] 3.3.5.9.13: a VM failing over to another node opens its disk with the same
    AppInstanceId; the old node's open is closed so the new one is not refused."""
    files, share = make_state(root)
    a, b = Client(files, share), Client(files, share)
    a.conn.client_guid, b.conn.client_guid = os.urandom(16), os.urandom(16)
    app = struct.pack("<HH16s", 20, 0, os.urandom(16))
    ctx = ((wc.CTX_APP_INSTANCE_ID, app),)
    ra = await a.create("vm.vhdx", disposition=D.CREATE, share=0, contexts=ctx)
    assert await b.create_status("vm.vhdx", share=0) == NTStatus.SHARING_VIOLATION
    rb = await b.create("vm.vhdx", share=0, contexts=ctx)
    assert await a.status_of(Command.READ, _read_body(ra.file_id, 0, 1)) == NTStatus.FILE_CLOSED
    await b.close(rb.file_id)


async def test_extended_attributes(root: Path) -> None:
    """[MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION through ExtA, SET_INFO and QUERY_INFO."""
    files, share = make_state(root)
    c = Client(files, share)
    exta = fscc.pack_full_ea_info([fscc.EaEntry(b"First", b"one")])
    r = await c.create("f", disposition=D.CREATE, contexts=((wc.CTX_EA_BUFFER, exta),))
    both = fscc.pack_full_ea_info([fscc.EaEntry(b"second", b"two"), fscc.EaEntry(b"FIRST", b"")])
    await c.set_info(r.file_id, InfoType.FILE, 15, both)
    got = fscc.parse_full_ea_info(body_bytes(await c.query_info(r.file_id, InfoType.FILE, 15))[8:])
    assert got == [fscc.EaEntry(b"SECOND", b"two")]  # upper-cased; an empty value deletes
    size = struct.unpack("<I", body_bytes(await c.query_info(r.file_id, InfoType.FILE, 7))[8:])[0]
    assert size == len(fscc.pack_full_ea_info(got))
    bad = fscc.pack_full_ea_info([fscc.EaEntry(b"a*b", b"x")])
    assert await c.status_of(Command.SET_INFO, _set(r.file_id, 15, bad)) == NTStatus.INVALID_EA_NAME
    await c.set_info(
        r.file_id, InfoType.FILE, 15, fscc.pack_full_ea_info([fscc.EaEntry(b"second", b"")])
    )
    assert await c.status_of(Command.QUERY_INFO, _qi(r.file_id, 15)) == NTStatus.NO_EAS_ON_FILE


async def test_security_descriptor_is_stored_and_enforced(root: Path) -> None:
    from smbd.server.files import security as sec

    files, share = make_state(root)
    c = Client(files, share)
    r = await c.create("f", disposition=D.CREATE)
    deny_read = sec.SecurityDescriptor(
        0x8004, dacl=sec._acl([(1, 0, READ, sec.EVERYONE), (0, 0, 0x1F01FF, sec.EVERYONE)])
    )
    resp = await c.call(
        Command.SET_INFO,
        wi.pack_set_info_request(
            wi.SetInfoRequest(InfoType.SECURITY, 0, memoryview(sec.pack(deny_read)), 0x4, r.file_id)
        ),
    )
    assert resp.status == NTStatus.SUCCESS
    got = sec.parse(body_bytes(await c.query_info(r.file_id, InfoType.SECURITY, 0, addl=0x7))[8:])
    assert got.dacl == deny_read.dacl and got.owner == sec.ADMINISTRATORS
    await c.close(r.file_id)
    assert await c.create_status("f", access=READ) == NTStatus.ACCESS_DENIED
    w = await c.create("f", access=WRITE)
    await c.close(w.file_id)


async def test_losing_one_channel_keeps_the_opens(root: Path) -> None:
    """Multichannel ([MS-SMB2] 3.3.7.1): an open outlives a connection while its session
    has another channel; when the last one goes, non-durable opens close."""
    from smbd.server.model import Channel, Connection

    files, share = make_state(root)
    c = Client(files, share)
    second = Connection(999, "127.0.0.2:2")
    c.session.channels = [Channel(c.conn, b""), Channel(second, b"")]
    c.conn.sessions[c.session.session_id] = c.session
    second.sessions[c.session.session_id] = c.session
    r = await c.create("f", disposition=D.CREATE)
    files.connection_lost(c.conn)
    assert [o.connection_id for o in files.opens.values()] == [999]
    assert await c.write(r.file_id, 0, b"still here") == 10
    c.session.channels = [Channel(second, b"")]
    files.connection_lost(second)
    assert files.open_list() == []


async def test_rename_refused_while_the_parent_is_open_for_delete(root: Path) -> None:
    """[MS-FSA] 2.1.5.15.12 via Windows behaviour (smbtorture smb2.oplock.exclusive6): an
    open of the parent directory with DELETE access makes a rename of an entry in it fail
    with SHARING_VIOLATION; without DELETE the rename goes through."""
    files, share = make_state(root)
    c = Client(files, share)
    d = await c.create("d", disposition=D.CREATE, options=Opt.DIRECTORY_FILE)
    f = await c.create("d\\f1", disposition=D.CREATE)
    rn = fscc.pack_rename_info(fscc.RenameInfo(True, 0, "d\\f2"))
    st = await c.status_of(Command.SET_INFO, _set(f.file_id, 10, rn))
    assert st == NTStatus.SHARING_VIOLATION
    assert (root / "d" / "f1").exists()
    await c.close(d.file_id)
    d2 = await c.create("d", access=READ | WRITE, options=Opt.DIRECTORY_FILE)
    await c.set_info(f.file_id, InfoType.FILE, 10, rn)
    assert (root / "d" / "f2").exists() and not (root / "d" / "f1").exists()
    await c.close(d2.file_id)
    await c.close(f.file_id)


def _stream_names(info: bytes) -> list[str]:
    """Names of a [MS-FSCC] 2.4.43 FileStreamInformation chain."""
    out, off = [], 0
    while True:
        nxt, nlen = struct.unpack_from("<II", info, off)
        out.append(info[off + 24 : off + 24 + nlen].decode("utf-16-le"))
        if not nxt:
            return out
        off += nxt


async def test_named_streams(root: Path) -> None:
    """[MS-FSCC] 2.1.5.1 named streams: ``file:name`` and ``file:name:$DATA`` are a data
    stream of their own (created with the file when needed), listed by
    FileStreamInformation after ``::$DATA``, deleted with the file, and kept out of sight."""
    files, share = make_state(root)
    c = Client(files, share)
    s = await c.create("f:one", disposition=D.CREATE)
    assert (root / "f").is_file() and (root / "f").stat().st_size == 0
    assert await c.write(s.file_id, 0, b"stream data") == 11
    f = await c.create("F", disposition=D.OPEN)  # the base file, case-insensitively
    await c.write(f.file_id, 0, b"base")
    assert await c.read(s.file_id, 0, 100) == b"stream data"
    s2 = await c.create("f:one:$DATA", disposition=D.OPEN)
    assert await c.read(s2.file_id, 0, 100) == b"stream data"
    info = body_bytes(await c.query_info(f.file_id, InfoType.FILE, 22))[8:]
    assert _stream_names(info) == ["::$DATA", ":one:$DATA"]
    assert struct.unpack_from("<Q", info, 8)[0] == 4  # ::$DATA size
    # share modes are per stream: an exclusive open of the stream leaves the file alone
    two = await c.create("f:two", disposition=D.CREATE, share=0)
    assert await c.create_status("f:two", share=0) == NTStatus.SHARING_VIOLATION
    await c.close((await c.create("f", share=0x7)).file_id)
    await c.close(two.file_id)
    # bad names, a missing stream, the hidden folder
    assert await c.create_status("f:x:$INDEX_ALLOCATION") == NTStatus.OBJECT_NAME_INVALID
    assert await c.create_status("f:nope", disposition=D.OPEN) == NTStatus.OBJECT_NAME_NOT_FOUND
    assert await c.create_status("g:x", disposition=D.OPEN) == NTStatus.OBJECT_NAME_NOT_FOUND
    assert not (root / "g").exists()
    assert await c.create_status(".vmstor-streams") == NTStatus.OBJECT_NAME_NOT_FOUND
    d = await c.create("", options=Opt.DIRECTORY_FILE)
    names = fscc.parse_directory_names(37, body_bytes(await c.query_dir(d.file_id))[8:])
    assert ".vmstor-streams" not in names and "f" in names
    # a stream cannot be renamed into a file of its own
    rn = fscc.pack_rename_info(fscc.RenameInfo(True, 0, "moved"))
    assert await c.status_of(Command.SET_INFO, _set(s.file_id, 10, rn)) == NTStatus.NOT_SUPPORTED
    assert not (root / "moved").exists()
    # deleting one stream leaves the others; deleting the file takes them all
    await c.set_info(s2.file_id, InfoType.FILE, 13, b"\x01")
    for fid in (s.file_id, s2.file_id):
        await c.close(fid)
    info = body_bytes(await c.query_info(f.file_id, InfoType.FILE, 22))[8:]
    assert _stream_names(info) == ["::$DATA", ":two:$DATA"]
    await c.set_info(f.file_id, InfoType.FILE, 13, b"\x01")
    await c.close(f.file_id)
    assert not (root / "f").exists()
    assert os.listdir(root / ".vmstor-streams") == []
