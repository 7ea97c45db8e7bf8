"""SMB2 over SMB Direct ([MS-SMB2] 2.1, [MS-SMBD]) against the SMBServer in this process,
on the userspace iWARP provider, with the project's client (smbd.client).

- 3.3.5.12 / 3.3.5.13: READ and WRITE with SMB2_CHANNEL_RDMA_V1(_INVALIDATE) move the data
  by RDMA Write / RDMA Read, the READ response has DataLength 0 and DataRemaining the
  count, INVALIDATE responses go as Send with Invalidate of the first descriptor's token;
  signed and encrypted sessions; channel values on TCP and bad channel info are
  STATUS_INVALID_PARAMETER.
- 3.3.5.15.11: FSCTL_QUERY_NETWORK_INTERFACE_INFO marks the SMB Direct address
  RDMA_CAPABLE.
- Bad input: descriptors beyond the client's region and a client that vanishes in the
  middle of a transfer cost that client its connection, are logged, free every queue pair
  and region, and leave another client's session working.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import struct
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import trio

from rdma.iwarp.provider import IwarpDevice
from rdma.smbdirect import SmbDirectError, connect
from smbd.client import SMBClient, SMBClientError
from smbd.config import ServerConfig, ShareConfig
from smbd.server import SMBServer
from smbd.transport.smbdirect import SmbDirectTransport
from smbd.wire import create as create_wire
from smbd.wire import fsctl, rw
from smbd.wire.constants import Command
from smbd.wire.status import NTStatus
from tests.smbd.server.conftest import PASSWORD, USER, Creds
from tests.smbd.server.rawclient import RawClient

MiB = 1 << 20
FSCTL_QUERY_NETWORK_INTERFACE_INFO = 0x001401FC
RDMA_CAPABLE = 0x2


class Lab:
    """The server (TCP and SMB Direct listeners) and what clients need to reach it."""

    def __init__(
        self, server: SMBServer, sdev: IwarpDevice, tcp: int, rdma: int, nursery: trio.Nursery
    ) -> None:
        self.server = server
        self.sdev = sdev
        self.tcp_port = tcp
        self.rdma_port = rdma
        self.nursery = nursery

    async def rdma_client(self, *, share: str = "share") -> tuple[SMBClient, int]:
        """A client with a session and a tree connect over SMB Direct; its device and
        channel stay open until the lab closes."""
        result: tuple[SMBClient, int] = await self.nursery.start(self._hold_client, share)
        return result

    async def _hold_client(
        self, share: str, *, task_status: trio.TaskStatus[tuple[SMBClient, int]]
    ) -> None:
        async with IwarpDevice.open() as dev, connect(dev, "127.0.0.1", self.rdma_port) as ch:
            client = SMBClient.over_smbdirect(ch)
            await client.negotiate()
            await client.session_setup(USER, PASSWORD)
            tid = await client.tree_connect(rf"\\127.0.0.1\{share}")
            task_status.started((client, tid))
            await trio.sleep_forever()

    def rdma_transports(self) -> list[SmbDirectTransport]:
        return [
            p.transport
            for p in self.server.processors.values()
            if isinstance(p.transport, SmbDirectTransport)
        ]


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    root = tmp_path / "share"
    root.mkdir()
    server = SMBServer(
        ServerConfig(server_guid=uuid.UUID(int=0x5445).bytes_le),
        {"share": ShareConfig("share", root), "enc": ShareConfig("enc", root, encrypt=True)},
        Creds(),
        logger=logging.getLogger("smbd.test"),
    )
    async with IwarpDevice.open() as sdev, trio.open_nursery() as nursery:
        (tcp,) = await nursery.start(server.serve_tcp, [("127.0.0.1", 0)])
        (rdma,) = await nursery.start(server.serve_rdma, sdev, [("127.0.0.1", 0)])
        yield Lab(server, sdev, tcp[1], rdma[1], nursery)
        nursery.cancel_scope.cancel()


async def round_trip(client: SMBClient, tid: int, name: str, size: int) -> None:
    fid = await client.create(tid, name, create=True)
    chunk = client.io_size(tid, write=True)
    data = hashlib.shake_256(name.encode()).digest(size)
    for off in range(0, size, chunk):
        assert await client.write(tid, fid, off, data[off : off + chunk]) == min(chunk, size - off)
    back = bytearray(size)
    rchunk = client.io_size(tid, write=False)
    for off in range(0, size, rchunk):
        view = memoryview(back)[off : off + rchunk]
        assert await client.read(tid, fid, off, view) == len(view)
    await client.close(tid, fid)
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()


# ------------------------------------------------------------------------------------
# 3.3.5.12 / 3.3.5.13 with RDMA channels


async def test_3_3_5_12_rdma_read_and_write_on_a_signed_session(lab: Lab) -> None:
    client, tid = await lab.rdma_client()
    await round_trip(client, tid, "signed.bin", 32 * MiB)
    assert client.rdma_writes == client.rdma_reads == 4  # 8 MiB each (MaxReadWriteSize)
    (transport,) = lab.rdma_transports()
    stats = transport.statistics()
    # the server moved 32 MiB each way by RDMA and invalidated each client buffer
    assert stats["rdma_bytes_read"] == stats["rdma_bytes_written"] == 32 * MiB
    assert stats["invalidations"] == 8 and stats["rdma_requests"] == 8
    # the messages carried no payload: 32 MiB inline would take ~25 000 fragments of
    # 1364 bytes; here the 14 messages (handshake included) take one or two each
    assert int(stats["fragments_in"]) < 2 * int(stats["messages_in"]) < 40
    assert int(stats["fragments_out"]) < 2 * int(stats["messages_out"]) < 40
    status = lab.server.status()
    assert [c["transport"] for c in status["channels"]] == ["rdma"]
    assert status["sessions"][0]["signed"]


async def test_3_3_5_12_encrypted_share_over_smb_direct(lab: Lab) -> None:
    client, tid = await lab.rdma_client(share="enc")
    await round_trip(client, tid, "encrypted.bin", 4 * MiB)
    # an encrypting client sends its data inline (encrypted), never by RDMA
    assert client.rdma_writes == client.rdma_reads == 0
    (transport,) = lab.rdma_transports()
    assert transport.statistics()["rdma_bytes_read"] == 0


async def test_rdma_channel_refused_where_encryption_is_required(lab: Lab) -> None:
    """An RDMA payload bypasses the transform header, so on an encrypted share the server
    refuses RDMA channels instead of moving the data in clear (no 3.1.1 RDMA transform)."""
    client, tid = await lab.rdma_client(share="enc")
    fid = await client.create(tid, "secret.bin", create=True)
    await client.write(tid, fid, 0, b"s" * 8192)
    assert client.channel is not None
    buf = bytearray(8192)
    reg = client.channel.register_buffer(buf, remote_write=True)
    descs = tuple(rw.BufferDescriptor(d.offset, d.token, d.length) for d in reg.descriptors)
    req = rw.ReadRequest(0, 0, len(buf), 0, fid, 0, rw.Channel.RDMA_V1, 0, descs)
    h, _body, _raw = await client.call(Command.READ, [rw.pack_read_request(req)], tree_id=tid)
    assert h.status == NTStatus.ACCESS_DENIED
    assert buf == bytearray(8192)  # nothing was written into the client's memory
    reg.deregister()
    (transport,) = lab.rdma_transports()
    assert transport.statistics()["rdma_bytes_written"] == 0
    back = bytearray(8192)
    assert await client.read(tid, fid, 0, memoryview(back)) == 8192  # inline still works
    assert back == b"s" * 8192


async def test_3_3_5_12_read_response_has_data_remaining_and_invalidates(lab: Lab) -> None:
    client, tid = await lab.rdma_client()
    fid = await client.create(tid, "r.bin", create=True)
    await client.write(tid, fid, 0, b"x" * 10_000)
    assert client.channel is not None
    buf = bytearray(16_384)
    reg = client.channel.register_buffer(buf, remote_write=True)
    descs = tuple(rw.BufferDescriptor(d.offset, d.token, d.length) for d in reg.descriptors)
    req = rw.ReadRequest(0, 0, len(buf), 0, fid, 0, rw.Channel.RDMA_V1_INVALIDATE, 0, descs)
    h, body, _raw = await client.call(Command.READ, [rw.pack_read_request(req)], tree_id=tid)
    assert h.status == NTStatus.SUCCESS
    resp = rw.parse_read_response(body)
    assert len(resp.data) == 0 and resp.data_remaining == 10_000  # 10 000 bytes to EOF
    assert buf[:10_000] == b"x" * 10_000 and reg.invalidated  # Send with Invalidate
    reg.deregister()
    # RDMA_V1 (no invalidation) leaves the client's region valid
    reg = client.channel.register_buffer(buf, remote_write=True)
    descs = tuple(rw.BufferDescriptor(d.offset, d.token, d.length) for d in reg.descriptors)
    req = req._replace(channel=rw.Channel.RDMA_V1, channel_info=descs)
    h, body, _raw = await client.call(Command.READ, [rw.pack_read_request(req)], tree_id=tid)
    assert h.status == NTStatus.SUCCESS and not reg.invalidated
    reg.deregister()


async def test_3_3_5_13_failed_invalidate_write_still_invalidates(lab: Lab) -> None:
    """An RDMA_V1_INVALIDATE request answered with an error still goes out as Send with
    Invalidate: the client counts on having lost the remote access either way."""
    client, tid = await lab.rdma_client()
    assert client.channel is not None
    buf = bytearray(8192)
    reg = client.channel.register_buffer(buf, remote_write=False)
    descs = tuple(rw.BufferDescriptor(d.offset, d.token, d.length) for d in reg.descriptors)
    bogus_fid = (0x1234, 0x5678)
    req = rw.WriteRequest(
        memoryview(b""), 0, bogus_fid, rw.Channel.RDMA_V1_INVALIDATE, 8192, 0, descs
    )
    h, _b, _r = await client.call(Command.WRITE, rw.pack_write_request(req), tree_id=tid)
    assert h.status == NTStatus.FILE_CLOSED
    assert reg.invalidated
    reg.deregister()


async def test_channel_on_tcp_is_invalid_parameter(lab: Lab) -> None:
    client = await SMBClient.connect_tcp("127.0.0.1", lab.tcp_port)
    async with client:
        await client.negotiate()
        await client.session_setup(USER, PASSWORD)
        tid = await client.tree_connect(r"\\127.0.0.1\share")
        fid = await client.create(tid, "t.bin", create=True)
        descs = (rw.BufferDescriptor(0x1000, 0x42, 4096),)
        read = rw.ReadRequest(0, 0, 4096, 0, fid, 0, rw.Channel.RDMA_V1, 0, descs)
        h, _b, _r = await client.call(Command.READ, [rw.pack_read_request(read)], tree_id=tid)
        assert h.status == NTStatus.INVALID_PARAMETER
        write = rw.WriteRequest(memoryview(b""), 0, fid, rw.Channel.RDMA_V1, 4096, 0, descs)
        h, _b, _r = await client.call(Command.WRITE, rw.pack_write_request(write), tree_id=tid)
        assert h.status == NTStatus.INVALID_PARAMETER
        # the connection is fine afterwards
        assert await client.write(tid, fid, 0, b"ok") == 2


_READ = struct.Struct("<HBBIQQQIIIHH")


@pytest.mark.parametrize(
    ("channel", "info"),
    [
        (rw.Channel.RDMA_V1, b""),  # no descriptors
        (rw.Channel.RDMA_V1_INVALIDATE, bytes(24)),  # not a multiple of 16 bytes
        (rw.Channel.RDMA_TRANSFORM, bytes(16)),  # not negotiated
        (7, bytes(16)),  # no such channel
        (rw.Channel.RDMA_V1, struct.pack("<QII", 0, 1, 4096) * 17),  # too many descriptors
        (rw.Channel.RDMA_V1, struct.pack("<QII", 0, 1, 100)),  # shorter than the READ
    ],
    ids=["empty", "ragged", "transform", "unknown", "too-many", "too-short"],
)
async def test_3_3_5_12_bad_channel_info_is_invalid_parameter(
    lab: Lab, channel: int, info: bytes
) -> None:
    client, tid = await lab.rdma_client()
    fid = await client.create(tid, "c.bin", create=True)
    info_off = 64 + _READ.size if info else 0
    body = _READ.pack(49, 0, 0, 4096, 0, *fid, 0, channel, 0, info_off, len(info))
    h, _b, _r = await client.call(Command.READ, [body + (info or b"\0")], tree_id=tid)
    assert h.status == NTStatus.INVALID_PARAMETER
    assert await client.write(tid, fid, 0, b"still fine") == 10


# ------------------------------------------------------------------------------------
# 3.3.5.15.11 network interfaces


async def test_3_3_5_15_11_interfaces_advertise_rdma_capable(lab: Lab) -> None:
    client, tid = await lab.rdma_client()
    out = await client.ioctl(tid, FSCTL_QUERY_NETWORK_INTERFACE_INFO)
    ifaces = fsctl.parse_network_interfaces(out)
    loop = [i for i in ifaces if str(i.address) == "127.0.0.1"]
    assert loop and loop[0].capability & RDMA_CAPABLE, ifaces


# ------------------------------------------------------------------------------------
# bad input: the offender loses its connection, everyone else carries on


def _server_resources(lab: Lab) -> dict[str, int]:
    stats = lab.sdev.statistics()
    return {"queue_pairs": stats["queue_pairs"], "memory_regions": stats["memory_regions"]}


async def _settles(lab: Lab, baseline: dict[str, int]) -> None:
    """The server is back to one connection and the queue pairs and memory regions it
    had with that one alone."""
    with trio.move_on_after(10):
        while len(lab.server.connections) > 1 or _server_resources(lab) != baseline:
            await trio.sleep(0.01)
    assert len(lab.server.connections) == 1
    assert _server_resources(lab) == baseline


async def _write_file(client: SMBClient, tid: int, name: str, size: int) -> tuple[int, int]:
    fid = await client.create(tid, name, create=True)
    await client.write(tid, fid, 0, bytes(size))
    return fid


@pytest.mark.parametrize("op", ["read", "write"])
async def test_descriptor_beyond_the_clients_region(
    lab: Lab, op: str, caplog: pytest.LogCaptureFixture
) -> None:
    good, good_tid = await lab.rdma_client()
    baseline = _server_resources(lab)
    bad, tid = await lab.rdma_client()
    fid = await _write_file(bad, tid, "victim.bin", 256 * 1024)
    assert bad.channel is not None
    buf = bytearray(64 * 1024)
    reg = bad.channel.register_buffer(buf, remote_write=op == "read")
    (d,) = reg.descriptors
    lie = (rw.BufferDescriptor(d.offset, d.token, 256 * 1024),)  # 4x the region
    if op == "read":
        req = rw.ReadRequest(0, 0, 256 * 1024, 0, fid, 0, rw.Channel.RDMA_V1, 0, lie)
        parts: list[bytes | bytearray | memoryview] = [rw.pack_read_request(req)]
    else:
        wreq = rw.WriteRequest(memoryview(b""), 0, fid, rw.Channel.RDMA_V1, 256 * 1024, 0, lie)
        parts = rw.pack_write_request(wreq)
    with caplog.at_level(logging.INFO), pytest.raises(SmbDirectError), trio.fail_after(10):
        # the client's RNIC answers the access beyond its region with a Terminate, and
        # the queue pair is gone for both sides
        command = Command.READ if op == "read" else Command.WRITE
        await bad.call(command, parts, tree_id=tid, charge_bytes=256 * 1024)
    await _settles(lab, baseline)
    assert "dropping connection" in caplog.text or "closed" in caplog.text
    await round_trip(good, good_tid, "good.bin", 2 * MiB)


async def test_client_vanishing_mid_transfer(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    """The client goes away while the server is RDMA-reading its WRITE payload."""
    good, good_tid = await lab.rdma_client()
    baseline = _server_resources(lab)
    async with IwarpDevice.open() as dev, connect(dev, "127.0.0.1", lab.rdma_port) as ch:
        bad = SMBClient.over_smbdirect(ch)
        await bad.negotiate()
        await bad.session_setup(USER, PASSWORD)
        tid = await bad.tree_connect(r"\\127.0.0.1\share")
        fid = await bad.create(tid, "big.bin", create=True)
        # the userspace provider's queue pair: its byte counter, its socket and its tasks
        # (a client process that dies takes its TCP connection down with an RST)
        qp: Any = ch.qp
        start = qp.statistics()["bytes_out"]
        with caplog.at_level(logging.INFO):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_write_ignoring_failure, bad, tid, fid)
                with trio.fail_after(10):
                    while qp.statistics()["bytes_out"] < start + MiB:
                        await trio.sleep(0)
                # the RDMA Read Responses are on their way: vanish
                qp._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                qp._cancel.cancel()  # its tasks end and close the socket: RST
                nursery.cancel_scope.cancel()
            await _settles(lab, baseline)
    # the WRITE never completed; the server logged the loss and freed everything
    assert (lab.server.shares["share"].path / "big.bin").stat().st_size == 0
    assert "dropping connection" in caplog.text, caplog.text
    await round_trip(good, good_tid, "good.bin", 2 * MiB)
    # the server still accepts new SMB Direct clients
    again, tid2 = await lab.rdma_client()
    await round_trip(again, tid2, "again.bin", 1 * MiB)


async def _write_ignoring_failure(client: SMBClient, tid: int, fid: tuple[int, int]) -> None:
    with suppress(SmbDirectError, SMBClientError):
        await client.write(tid, fid, 0, bytes(8 * MiB))


async def _read_ignoring_failure(client: SMBClient, tid: int, fid: tuple[int, int]) -> None:
    with suppress(SmbDirectError, SMBClientError):
        await client.read(tid, fid, 0, bytearray(8 * MiB))


async def test_3_3_5_12_inline_read_must_fit_the_clients_reassembly(lab: Lab) -> None:
    """Without an RDMA channel the data goes in the response, which SMB Direct can only
    carry up to the client's MaxFragmentedSize (1 MiB here)."""
    client, tid = await lab.rdma_client()
    fid = await client.create(tid, "inline.bin", create=True)
    read = rw.ReadRequest(0, 0, 2 * MiB, 0, fid, 0, rw.Channel.NONE, 0)
    h, _b, _r = await client.call(
        Command.READ, [rw.pack_read_request(read)], tree_id=tid, charge_bytes=2 * MiB
    )
    assert h.status == NTStatus.INVALID_PARAMETER
    client.rdma_threshold = 1 << 40  # everything inline: the client keeps under 1 MiB
    await round_trip(client, tid, "inline.bin", 3 * MiB)
    assert client.rdma_reads == client.rdma_writes == 0


async def test_2_2_19_channel_is_ignored_below_smb_3(lab: Lab) -> None:
    """2.0.2 and 2.1: Channel and ReadChannelInfo are reserved; the server ignores them."""
    c = await RawClient.connect(lab.tcp_port)
    try:
        assert (await c.negotiate((0x0210,))).status == NTStatus.SUCCESS
        assert (await c.session_setup(USER, PASSWORD)).status == NTStatus.SUCCESS
        tree = await c.tree_connect(r"\\127.0.0.1\share")
        tid = tree.header.tree_id
        req = create_wire.CreateRequest(
            0, 0, 2, 0, 0x3, 0x80, 0x7, int(create_wire.CreateDisposition.OVERWRITE_IF), 0x40,
            "legacy.bin", (),
        )  # fmt: skip
        r = await c.call(Command.CREATE, create_wire.pack_create_request(req), tree_id=tid)
        fid = create_wire.parse_create_response(r.body).file_id
        descs = (rw.BufferDescriptor(0, 0x1234, 4096),)
        body = rw.pack_write_request(
            rw.WriteRequest(memoryview(b"old"), 0, fid, rw.Channel.RDMA_V1, 0, 0, descs)
        )
        r = await c.call(Command.WRITE, b"".join(bytes(p) for p in body), tree_id=tid)
        assert r.status == NTStatus.SUCCESS and rw.parse_write_response(r.body)[0] == 3
        read = rw.ReadRequest(0, 0, 3, 0, fid, 0, rw.Channel.RDMA_V1, 0, descs)
        r = await c.call(Command.READ, rw.pack_read_request(read), tree_id=tid)
        assert r.status == NTStatus.SUCCESS
        assert bytes(rw.parse_read_response(r.body).data) == b"old"
    finally:
        await c.aclose()
