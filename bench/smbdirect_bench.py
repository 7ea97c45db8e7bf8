"""1 MiB transfers over direct TCP and over SMB Direct (userspace iWARP provider), measured
in one run on loopback, with the ratio and the CPU seconds per GiB of each.

What each line moves, per 1 MiB operation:

- ``tcp write`` / ``tcp read``: a 1 MiB message with the 4-byte direct-TCP length prefix,
  client -> server / server -> client (what SMB2 WRITE/READ payloads cost on TCP);
- ``smbd write``: a small request carrying a buffer descriptor; the server RDMA-reads the
  1 MiB (SMB2 WRITE with SMB2_CHANNEL_RDMA_V1) and answers with a small message;
- ``smbd read``: the server RDMA-writes the 1 MiB and answers with Send with Invalidate
  (SMB2 READ with SMB2_CHANNEL_RDMA_V1_INVALIDATE);
- ``smbd inline``: the 1 MiB travels as an SMB Direct message (fragmented into
  MaxSendSize sends), as a client that does not use RDMA channels would send it.

Client and server run in this one process, so CPU s/GiB counts both ends.  Until the SMB
server takes SMB Direct channels this measures the transports under SMB2; the SMB2 framing
itself costs the same on both.

    python3 bench/smbdirect_bench.py [--mib 256] [--crc/--no-crc]
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from rdma.iwarp.provider import IwarpDevice
from rdma.smbdirect import SmbDirectChannel, SmbDirectServer, connect, decode_descriptors
from rdma.smbdirect import wire as smbd_wire

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


async def main(mib: int, crc: bool) -> None:
    tcp_w, tcp_r = await tcp_bench(mib)
    smbd_w, smbd_r, smbd_i = await smbd_bench(mib, crc)
    print(f"{mib} x 1 MiB per direction, loopback, MPA CRC {'on' if crc else 'off'}")
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
    args = parser.parse_args()
    trio.run(main, args.mib, args.crc)
