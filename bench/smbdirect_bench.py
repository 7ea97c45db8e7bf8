"""1 MiB SMB2 READs and WRITEs over direct TCP and over SMB Direct (userspace iWARP
provider) against the same vmstor SMB server, measured in one run on loopback, with the
ratio and the CPU seconds per GiB of each.

The server (``smbd.server.SMBServer``, listening on TCP and, through ``serve_rdma``, on
SMB Direct) and the project's client (``smbd.client.SMBClient``) run in this one process,
so the CPU seconds per GiB count both ends, file I/O included (the share is on
``/dev/shm`` when it exists, so the page cache, not a disk, is what the I/O costs):

- ``tcp``: 1 MiB WRITEs and READs carry the data in the SMB2 messages (direct TCP);
- ``smb direct``: 1 MiB WRITEs and READs with SMB2_CHANNEL_RDMA_V1_INVALIDATE: the server
  pulls the data with RDMA Read and pushes it with RDMA Write, the messages carry none.

Sessions are SMB 3.1.1 and signed (the server's default ``require_signing``); over TCP the
signature covers the payload, over RDMA only the message (without the 3.1.1 RDMA
transform). ``--unsigned`` measures both without signing.  ``--transports`` adds the
transport-only figures (no SMB2 server: a 1 MiB message each way over TCP, and an RDMA
Read / Write / inline message over SMB Direct).

    python3 bench/smbdirect_bench.py [--mib 256] [--unsigned] [--crc/--no-crc] [--transports]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import struct
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

from rdma.iwarp.provider import IwarpDevice
from rdma.smbdirect import SmbDirectChannel, SmbDirectServer, connect, decode_descriptors
from rdma.smbdirect import wire as smbd_wire
from smbd.auth.nthash import nt_hash
from smbd.client import SMBClient
from smbd.config import ServerConfig, ShareConfig
from smbd.server import SMBServer

MiB = 1 << 20


class Result:
    def __init__(self, name: str, nbytes: int, wall: float, cpu: float) -> None:
        self.name = name
        self.nbytes = nbytes
        self.wall = wall
        self.cpu = cpu

    @property
    def mib_s(self) -> float:
        return self.nbytes / MiB / self.wall

    @property
    def cpu_per_gib(self) -> float:
        return self.cpu / (self.nbytes / (1 << 30))


async def measure(name: str, nbytes: int, body: Callable[[], Awaitable[None]]) -> Result:
    c0, t0 = time.process_time(), time.perf_counter()
    await body()
    return Result(name, nbytes, time.perf_counter() - t0, time.process_time() - c0)


async def _recv_exactly(stream: trio.SocketStream, view: memoryview) -> None:
    got = 0
    while got < len(view):
        chunk = await stream.receive_some(len(view) - got)
        if not chunk:
            raise EOFError
        view[got : got + len(chunk)] = chunk
        got += len(chunk)


async def tcp_bench(ops: int) -> tuple[Result, Result]:
    payload = bytes(MiB)
    buf = bytearray(MiB)

    async def server(stream: trio.SocketStream) -> None:
        hdr = bytearray(4)
        while True:
            try:
                await _recv_exactly(stream, memoryview(hdr))
            except (EOFError, trio.BrokenResourceError):
                return
            (n,) = struct.unpack(">I", hdr)
            if n == 1:  # a read request: one byte
                await _recv_exactly(stream, memoryview(buf)[:1])
                await stream.send_all(struct.pack(">I", MiB) + payload)
            else:
                await _recv_exactly(stream, memoryview(buf)[:n])
                await stream.send_all(struct.pack(">I", 1) + b"k")

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        hdr = bytearray(4)

        async def writes() -> None:
            for _ in range(ops):
                await stream.send_all(struct.pack(">I", MiB) + payload)
                await _recv_exactly(stream, memoryview(hdr))
                await _recv_exactly(stream, memoryview(buf)[:1])

        async def reads() -> None:
            for _ in range(ops):
                await stream.send_all(struct.pack(">I", 1) + b"r")
                await _recv_exactly(stream, memoryview(hdr))
                await _recv_exactly(stream, memoryview(buf))

        w = await measure("tcp write", ops * MiB, writes)
        r = await measure("tcp read", ops * MiB, reads)
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return w, r


async def smbd_server(ch: SmbDirectChannel) -> None:
    data = bytes(MiB)
    sink = bytearray(MiB)
    while True:
        msg = await ch.receive_message()
        op = bytes(msg[:1])
        if op == b"W":
            await ch.rdma_read(decode_descriptors(msg[1:]), sink)
            await ch.send_message([b"k"])
        elif op == b"R":
            descs = decode_descriptors(msg[1:])
            await ch.rdma_write(descs, data)
            await ch.send_message([b"k"], invalidate_token=descs[0].token)
        else:
            await ch.send_message([b"k"])


async def smbd_bench(ops: int, crc: bool) -> tuple[Result, Result, Result]:
    async with (
        IwarpDevice.open(crc=crc) as sdev,
        IwarpDevice.open(crc=crc) as cdev,
        trio.open_nursery() as nursery,
    ):
        server = SmbDirectServer(sdev)
        addr = await nursery.start(server.serve, "127.0.0.1", 0, smbd_server)
        async with connect(cdev, *addr) as ch:
            source = bytearray(MiB)
            sink = bytearray(MiB)

            async def writes() -> None:
                for _ in range(ops):
                    reg = ch.register_buffer(source, remote_write=False)
                    await ch.send_message([b"W", smbd_wire.encode_descriptors(reg.descriptors)])
                    await ch.receive_message()
                    reg.deregister()

            async def reads() -> None:
                for _ in range(ops):
                    reg = ch.register_buffer(sink, remote_write=True)
                    await ch.send_message([b"R", smbd_wire.encode_descriptors(reg.descriptors)])
                    await ch.receive_message()
                    assert reg.invalidated
                    reg.deregister()

            inline_ops = max(1, ops // 4)
            payload = memoryview(bytes(MiB - 64))

            async def inline() -> None:
                for _ in range(inline_ops):
                    await ch.send_message([b"I", payload])
                    await ch.receive_message()

            w = await measure("smbd write (RDMA read)", ops * MiB, writes)
            r = await measure("smbd read (RDMA write)", ops * MiB, reads)
            i = await measure("smbd inline 1 MiB msg", inline_ops * MiB, inline)
        nursery.cancel_scope.cancel()
    return w, r, i


# ------------------------------------------------------------------------------------
# SMB2 through the server


USER, PASSWORD = "bench", "Bench-Passw0rd"


class _Users:
    def lookup(self, name: str) -> tuple[str, bytes] | None:
        return (USER, nt_hash(PASSWORD)) if name.lower() == USER else None


async def smb2_file_bench(client: SMBClient, label: str, mib: int) -> tuple[Result, Result]:
    tid = await client.tree_connect(r"\\127.0.0.1\bench")
    name = f"{label.replace(' ', '-')}.bin"
    fid = await client.create(tid, name, create=True)
    data = hashlib.shake_256(name.encode()).digest(MiB)
    buf = bytearray(MiB)

    async def writes() -> None:
        for i in range(mib):
            assert await client.write(tid, fid, i * MiB, data) == MiB

    async def reads() -> None:
        for i in range(mib):
            assert await client.read(tid, fid, i * MiB, buf) == MiB

    w = await measure(f"{label} write", mib * MiB, writes)
    r = await measure(f"{label} read", mib * MiB, reads)
    assert buf == data
    await client.close(tid, fid)
    return w, r


async def smb2_bench(mib: int, crc: bool, signed: bool) -> list[tuple[Result, Result]]:
    """[(tcp write, smbd write), (tcp read, smbd read)] against one server."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="smbdirect-bench.", dir=base) as root:
        server = SMBServer(
            ServerConfig(server_guid=uuid.uuid4().bytes_le, require_signing=signed),
            {"bench": ShareConfig("bench", Path(root))},
            _Users(),
            logger=logging.getLogger("bench.smbd"),
        )
        async with (
            IwarpDevice.open(crc=crc) as sdev,
            IwarpDevice.open(crc=crc) as cdev,
            trio.open_nursery() as nursery,
        ):
            ((_, tcp_port),) = await nursery.start(server.serve_tcp, [("127.0.0.1", 0)])
            (rdma_addr,) = await nursery.start(server.serve_rdma, sdev, [("127.0.0.1", 0)])
            tcp = await SMBClient.connect_tcp("127.0.0.1", tcp_port)
            async with tcp:
                tcp.signing = signed
                await tcp.negotiate()
                await tcp.session_setup(USER, PASSWORD)
                tcp_w, tcp_r = await smb2_file_bench(tcp, "tcp", mib)
            async with connect(cdev, *rdma_addr) as ch:
                rdma = SMBClient.over_smbdirect(ch)
                rdma.signing = signed
                await rdma.negotiate()
                await rdma.session_setup(USER, PASSWORD)
                smbd_w, smbd_r = await smb2_file_bench(rdma, "smb direct", mib)
                assert rdma.rdma_writes == rdma.rdma_reads == mib
            nursery.cancel_scope.cancel()
    return [(tcp_w, smbd_w), (tcp_r, smbd_r)]


def _row(res: Result, base: Result) -> str:
    return (
        f"{res.name:28} {res.mib_s:9.1f} {res.cpu_per_gib:10.2f} "
        f"{res.mib_s / base.mib_s:7.2f}x {res.cpu_per_gib / base.cpu_per_gib:8.2f}x"
    )


async def main(mib: int, crc: bool, signed: bool, transports: bool) -> None:
    pairs = await smb2_bench(mib, crc, signed)
    print(
        f"SMB2 1 MiB READ/WRITE, {mib} per direction, one vmstor server, loopback, "
        f"{'signed' if signed else 'unsigned'}, MPA CRC {'on' if crc else 'off'}"
    )
    print(f"{'transfer':28} {'MiB/s':>9} {'CPU s/GiB':>10} {'vs TCP':>8} {'CPU vs':>9}")
    for tcp_res, smbd_res in pairs:
        print(_row(tcp_res, tcp_res))
        print(_row(smbd_res, tcp_res))
    if transports:
        await transport_main(mib, crc)


async def transport_main(mib: int, crc: bool) -> None:
    tcp_w, tcp_r = await tcp_bench(mib)
    smbd_w, smbd_r, smbd_i = await smbd_bench(mib, crc)
    print()
    print(f"transports only: {mib} x 1 MiB per direction, MPA CRC {'on' if crc else 'off'}")
    print(f"{'transfer':28} {'MiB/s':>9} {'CPU s/GiB':>10} {'vs TCP':>8}")
    for res, base in (
        (tcp_w, tcp_w),
        (tcp_r, tcp_r),
        (smbd_w, tcp_w),
        (smbd_r, tcp_r),
        (smbd_i, tcp_w),
    ):
        print(
            f"{res.name:28} {res.mib_s:9.1f} {res.cpu_per_gib:10.2f} {res.mib_s / base.mib_s:7.2f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="1 MiB operations per direction")
    parser.add_argument("--crc", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--unsigned", action="store_true", help="no SMB2 signing")
    parser.add_argument("--transports", action="store_true", help="also the transport-only figures")
    args = parser.parse_args()
    trio.run(main, args.mib, args.crc, not args.unsigned, args.transports)
