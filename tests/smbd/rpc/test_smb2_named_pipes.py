"""[MS-SMB2] 3.3.5.9 / 3.3.5.12 / 3.3.5.13 / 3.3.5.15.4 named pipes on IPC$, through the
file handlers' table (the hooks in create, readwrite, close, info and ioctl) in process:
pipe opens, [MS-FSCC] 2.4.41 / 2.4.33 / 2.4.34 pipe information, WRITE then READ,
FSCTL_PIPE_TRANSCEIVE, a READ that waits, and a pipe disconnected after a fault."""

from __future__ import annotations

import itertools
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import trio

from smbd.config import ServerConfig, ShareConfig
from smbd.rpc import pdu
from smbd.server.files import HANDLERS
from smbd.server.files.pipes import MAX_PIPES_PER_TREE, open_list, server_env, service
from smbd.server.model import Connection, Session, TreeConnect
from smbd.server.request import Request, Response, SMBError
from smbd.wire import close as wclose
from smbd.wire import create as wc
from smbd.wire import info as wi
from smbd.wire import ioctl as wio
from smbd.wire import rw
from smbd.wire.constants import Command
from smbd.wire.fsctl import FsctlCode
from smbd.wire.status import NTStatus
from tests.smbd.files.harness import handler_request
from tests.smbd.rpc import vectors

FILE_INFO = wi.InfoType.FILE


class FakeServer:
    def __init__(self, root: Path) -> None:
        self.config = ServerConfig(server_guid=bytes(16), server_name="VMSTOR")
        self.shares = {
            "vms": ShareConfig("vms", root, comment="VM disks"),
            "secure": ShareConfig("secure", root, encrypt=True),
        }
        self.rng = os.urandom
        self.files: Any = None


class Hooks:
    def __init__(self) -> None:
        self.interim = 0

    async def go_async(self, req: Request) -> int:
        self.interim += 1
        return self.interim


class IpcClient:
    """One session with a tree connect on IPC$."""

    _ids = itertools.count(100)

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.conn = Connection(next(self._ids), "127.0.0.1:1")
        self.conn.dialect = 0x0311
        self.conn.max_read_size = self.conn.max_write_size = 1 << 20
        self.conn.max_transact_size = 1 << 20
        self.session = Session(next(self._ids), self.conn, 0.0)
        self.tree = TreeConnect(
            next(self._ids), self.session, "IPC$", None, maximal_access=0x1F01FF, encrypt_data=False
        )
        self.session.trees[self.tree.tree_id] = self.tree
        self.hooks = Hooks()
        self._mid = itertools.count(1)

    async def call(self, command: Command, body: bytes) -> Response:
        req = handler_request(
            self.server, self.conn, self.tree, command, body, next(self._mid), self.hooks
        )
        return await HANDLERS[command](req)

    async def status(self, command: Command, body: bytes) -> int:
        try:
            return (await self.call(command, body)).status
        except SMBError as exc:
            return exc.status

    @staticmethod
    def create_body(name: str) -> bytes:
        return wc.pack_create_request(
            wc.CreateRequest(0, 0, 2, 0, 0x0012019F, 0, 0x3, 1, 0x400040, name, ())
        )

    async def create(self, name: str) -> wc.CreateResponse:
        resp = await self.call(Command.CREATE, self.create_body(name))
        return wc.parse_create_response(body(resp))

    async def write(self, fid: tuple[int, int], data: bytes) -> int:
        resp = await self.call(
            Command.WRITE,
            b"".join(rw.pack_write_request(rw.WriteRequest(memoryview(data), 0, fid, 0, 0, 0))),
        )
        return rw.parse_write_response(body(resp))[0]

    def read_body(self, fid: tuple[int, int], length: int) -> bytes:
        return rw.pack_read_request(rw.ReadRequest(0, 0, length, 0, fid, 0, 0, 0))

    async def read(self, fid: tuple[int, int], length: int = 4280) -> tuple[int, bytes]:
        resp = await self.call(Command.READ, self.read_body(fid, length))
        return resp.status, bytes(rw.parse_read_response(body(resp)).data)

    async def transceive(
        self, fid: tuple[int, int], data: bytes, max_out: int = 4280
    ) -> tuple[int, bytes]:
        resp = await self.call(
            Command.IOCTL,
            wio.pack_ioctl_request(
                FsctlCode.FSCTL_PIPE_TRANSCEIVE, fid, data, max_output_response=max_out
            ),
        )
        return resp.status, bytes(wio.parse_ioctl_response(body(resp)).output)

    async def query(self, fid: tuple[int, int], cls: int, limit: int = 1024) -> bytes:
        resp = await self.call(
            Command.QUERY_INFO,
            wi.pack_query_info_request(
                wi.QueryInfoRequest(FILE_INFO, cls, limit, memoryview(b""), 0, 0, fid)
            ),
        )
        return bytes(wi.parse_query_info_response(body(resp)))

    async def close(self, fid: tuple[int, int], postquery: bool = False) -> wclose.CloseResponse:
        resp = await self.call(
            Command.CLOSE, wclose.pack_close_request(wclose.CloseRequest(int(postquery), fid))
        )
        return wclose.parse_close_response(body(resp))


def body(resp: Response) -> bytes:
    return b"".join(bytes(p) for p in resp.body)


@pytest.fixture
def client(tmp_path: Path) -> IpcClient:
    return IpcClient(FakeServer(tmp_path))


async def test_3_3_5_9_pipe_open(client: IpcClient) -> None:
    cr = await client.create("srvsvc")
    assert cr.file_attributes == 0x80  # FILE_ATTRIBUTE_NORMAL
    assert (cr.allocation_size, cr.end_of_file, cr.create_action, cr.oplock_level) == (
        4096,
        0,
        1,
        0,
    )
    assert (await client.create("\\PIPE\\WKSSVC")).file_id != cr.file_id
    for name in ("lsarpc", "srvsvc\\x", "", "..\\srvsvc"):
        status = await client.status(Command.CREATE, client.create_body(name))
        assert status == NTStatus.OBJECT_NAME_NOT_FOUND, name


async def test_pipe_opens_are_listed_for_status(client: IpcClient) -> None:
    assert open_list(client.server) == []
    srvsvc = (await client.create("srvsvc")).file_id
    await client.create("\\PIPE\\wkssvc")
    listed = open_list(client.server)
    assert [(o["share"], o["session"]) for o in listed] == [("IPC$", client.session.session_id)] * 2
    assert sorted(o["path"].lower() for o in listed) == ["srvsvc", "wkssvc"]
    await client.close(srvsvc)
    assert [o["path"].lower() for o in open_list(client.server)] == ["wkssvc"]


async def test_fscc_2_4_pipe_information(client: IpcClient) -> None:
    fid = (await client.create("srvsvc")).file_id
    # [MS-FSCC] 2.4.41: AllocationSize, EndOfFile, NumberOfLinks, DeletePending, Directory
    assert await client.query(fid, 5) == struct.pack("<qqIBB2x", 4096, 0, 1, 1, 0)
    # 2.4.33: message read mode, queued completion
    assert await client.query(fid, 23) == struct.pack("<II", 1, 0)
    local = struct.unpack("<10I", await client.query(fid, 24))
    assert local[0] == 1  # FILE_PIPE_MESSAGE_TYPE
    assert local[1] == 2  # full duplex
    assert local[5] == 0  # ReadDataAvailable
    assert local[8:] == (3, 1)  # connected, server end
    await client.write(fid, vectors.SMBCLIENT_BIND)
    assert struct.unpack("<10I", await client.query(fid, 24))[5] == 68
    with pytest.raises(SMBError) as info:
        await client.query(fid, 4)  # FileBasicInformation
    assert info.value.status == NTStatus.NOT_SUPPORTED
    with pytest.raises(SMBError) as info:
        await client.query(fid, 5, limit=8)
    assert info.value.status == NTStatus.INFO_LENGTH_MISMATCH
    ok = wi.pack_set_info_request(
        wi.SetInfoRequest(FILE_INFO, 23, memoryview(struct.pack("<II", 1, 0)), 0, fid)
    )
    assert (await client.call(Command.SET_INFO, ok)).status == NTStatus.SUCCESS
    bad = wi.pack_set_info_request(
        wi.SetInfoRequest(FILE_INFO, 23, memoryview(struct.pack("<II", 0, 1)), 0, fid)
    )
    assert await client.status(Command.SET_INFO, bad) == NTStatus.INVALID_PARAMETER


async def test_write_then_read_rpc(client: IpcClient) -> None:
    fid = (await client.create("srvsvc")).file_id
    assert await client.write(fid, vectors.SMBCLIENT_BIND) == 72
    status, head = await client.read(fid, 20)
    assert status == NTStatus.BUFFER_OVERFLOW
    status, rest = await client.read(fid, 4280)
    assert status == NTStatus.SUCCESS
    ack = pdu.parse_bind_ack(head + rest)
    assert ack.sec_addr == "\\PIPE\\srvsvc"
    await client.write(fid, vectors.SMBCLIENT_SHARE_ENUM)
    status, resp = await client.read(fid)
    from impacket.dcerpc.v5 import srvs

    r = srvs.NetrShareEnumResponse(bytes(pdu.parse_response(resp).stub))
    entries = r["InfoStruct"]["ShareInfo"]["Level1"]["Buffer"]
    assert [(e["shi1_netname"], e["shi1_type"], e["shi1_remark"]) for e in entries] == [
        ("secure\x00", 0, "\x00"),
        ("vms\x00", 0, "VM disks\x00"),
        ("IPC$\x00", 0x80000003, "Remote IPC\x00"),
    ]
    assert (await client.close(fid, postquery=True)).file_attributes == 0x80


async def test_3_3_5_15_4_transceive_and_overflow(client: IpcClient) -> None:
    fid = (await client.create("srvsvc")).file_id
    status, ack = await client.transceive(fid, vectors.SMBCLIENT_BIND)
    assert status == NTStatus.SUCCESS
    assert pdu.parse_bind_ack(ack).results[0].result == 0
    status, first = await client.transceive(fid, vectors.SMBCLIENT_SHARE_ENUM, max_out=100)
    assert (status, len(first)) == (NTStatus.BUFFER_OVERFLOW, 100)
    # unread data: another TRANSCEIVE is refused, READ takes the rest
    assert (
        await client.status(
            Command.IOCTL, wio.pack_ioctl_request(FsctlCode.FSCTL_PIPE_TRANSCEIVE, fid, b"x")
        )
        == NTStatus.PIPE_BUSY
    )
    status, rest = await client.read(fid)
    assert status == NTStatus.SUCCESS
    assert pdu.parse_response(first + rest).header.call_id == 2


async def test_read_on_an_empty_pipe_waits(client: IpcClient) -> None:
    fid = (await client.create("srvsvc")).file_id
    result: list[tuple[int, bytes]] = []

    async def reader() -> None:
        result.append(await client.read(fid))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        with trio.fail_after(5):
            while client.hooks.interim == 0:
                await trio.sleep(0.001)
        assert not result  # went async (interim STATUS_PENDING) and waits
        await client.write(fid, vectors.SMBCLIENT_BIND)
    assert result[0][0] == NTStatus.SUCCESS
    assert result[0][1][2] == pdu.PType.BIND_ACK


async def test_close_ends_a_waiting_read(client: IpcClient) -> None:
    fid = (await client.create("wkssvc")).file_id
    statuses: list[int] = []

    async def reader() -> None:
        statuses.append(await client.status(Command.READ, client.read_body(fid, 100)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        with trio.fail_after(5):
            while client.hooks.interim == 0:
                await trio.sleep(0.001)
        await client.close(fid)
    assert statuses == [NTStatus.PIPE_BROKEN]
    assert await client.status(Command.READ, client.read_body(fid, 100)) == NTStatus.FILE_CLOSED


async def test_tree_disconnect_ends_a_waiting_read(client: IpcClient, autojump_clock: Any) -> None:
    fid = (await client.create("srvsvc")).file_id
    statuses: list[int] = []

    async def reader() -> None:
        statuses.append(await client.status(Command.READ, client.read_body(fid, 100)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.sleep(5)
        assert not statuses
        client.session.trees.pop(client.tree.tree_id)  # what TREE_DISCONNECT does
    assert statuses == [NTStatus.PIPE_BROKEN]


async def test_fault_then_pipe_disconnected(client: IpcClient) -> None:
    fid = (await client.create("srvsvc")).file_id
    other = (await client.create("srvsvc")).file_id
    bad = bytearray(vectors.SMBCLIENT_BIND)
    bad[8:10] = (60000).to_bytes(2, "little")  # a fragment far beyond max_recv_frag
    await client.write(fid, bytes(bad))
    status, fault = await client.read(fid)
    assert status == NTStatus.SUCCESS
    assert pdu.parse_fault(fault) == pdu.Fault.NCA_S_PROTO_ERROR
    assert (
        await client.status(Command.READ, client.read_body(fid, 100)) == NTStatus.PIPE_DISCONNECTED
    )
    write = b"".join(rw.pack_write_request(rw.WriteRequest(memoryview(b"x"), 0, fid, 0, 0, 0)))
    assert await client.status(Command.WRITE, write) == NTStatus.PIPE_DISCONNECTED
    # the session and the other pipe are unaffected
    status, ack = await client.transceive(other, vectors.SMBCLIENT_BIND)
    assert status == NTStatus.SUCCESS
    assert ack[2] == pdu.PType.BIND_ACK
    await client.close(fid)


async def test_pipe_opens_are_per_tree_and_bounded(client: IpcClient, tmp_path: Path) -> None:
    fid = (await client.create("srvsvc")).file_id
    stranger = IpcClient(client.server)
    assert await stranger.status(Command.READ, stranger.read_body(fid, 10)) == NTStatus.FILE_CLOSED
    for _ in range(MAX_PIPES_PER_TREE - 1):
        await client.create("srvsvc")
    status = await client.status(Command.CREATE, client.create_body("srvsvc"))
    assert status == NTStatus.INSUFFICIENT_RESOURCES
    stats = service(client.server).statistics()
    assert stats["open"] == MAX_PIPES_PER_TREE
    assert stats["refused"] >= 1


def test_server_env_lists_config_shares_then_ipc(tmp_path: Path) -> None:
    env = server_env(FakeServer(tmp_path))  # type: ignore[arg-type]
    assert [(s.name, s.type, s.comment, s.flags) for s in env.shares] == [
        ("secure", 0, "", 0x8000),
        ("vms", 0, "VM disks", 0),
        ("IPC$", 0x80000003, "Remote IPC", 0x30),
    ]
    assert env.shares[1].path == "C:" + str(tmp_path).replace("/", "\\")
    assert env.server_name == "VMSTOR"
