"""SMB Direct end to end on loopback over the userspace iWARP provider: the server transport
and the client, 64 MiB+ each way through send/receive and through RDMA write and read, Send
with Invalidate (SMB2_CHANNEL_RDMA_V1_INVALIDATE), and peers that misbehave or vanish."""

from __future__ import annotations

import hashlib
import logging
import random
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from rdma.iwarp import ddp, mpa
from rdma.iwarp.provider import IwarpDevice
from rdma.smbdirect import (
    ChannelClosed,
    SmbDirectChannel,
    SmbDirectConfig,
    SmbDirectError,
    SmbDirectServer,
    TransportConfig,
    connect,
    decode_descriptors,
    encode_descriptors,
    wire,
)
from rdma.verbs import Access, Sge, WcStatus

MiB = 1 << 20
CHUNK = 8 * MiB  # the default MaxReadWriteSize


def pattern(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


class Handler:
    """A toy upper layer: the first byte of each message is an opcode."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.messages = 0

    async def __call__(self, ch: SmbDirectChannel) -> None:
        digest = hashlib.sha256()
        try:
            while True:
                msg = await ch.receive_message()
                self.messages += 1
                op, body = bytes(msg[:1]), msg[1:]
                if op == b"S":  # a stream chunk: hash it
                    digest.update(body)
                elif op == b"D":  # the stream's digest
                    await ch.send_message([b"D", digest.digest()])
                    digest = hashlib.sha256()
                elif op in (b"W", b"I"):  # RDMA write a pattern (SMB2 READ)
                    (seed,) = struct.unpack_from("<Q", body, 0)
                    descs = decode_descriptors(body[8:])
                    data = pattern(seed, sum(d.length for d in descs))
                    await ch.rdma_write(descs, data)
                    token = descs[0].token if op == b"I" else None
                    await ch.send_message([b"ok"], invalidate_token=token)
                elif op == b"R":  # RDMA read and hash (SMB2 WRITE)
                    descs = decode_descriptors(body)
                    buf = bytearray(sum(d.length for d in descs))
                    n = await ch.rdma_read(descs, buf)
                    await ch.send_message([b"R", hashlib.sha256(memoryview(buf)[:n]).digest()])
        except SmbDirectError as e:
            self.errors.append(e)
            raise


@pytest.fixture
async def server_dev() -> AsyncIterator[IwarpDevice]:
    async with IwarpDevice.open(name="server") as dev:
        yield dev


@pytest.fixture
async def client_dev() -> AsyncIterator[IwarpDevice]:
    async with IwarpDevice.open(name="client") as dev:
        yield dev


@asynccontextmanager
async def serving(
    dev: IwarpDevice, handler: Callable[[SmbDirectChannel], Awaitable[None]]
) -> AsyncIterator[tuple[SmbDirectServer, tuple[str, int]]]:
    """An SMB Direct server on ``dev`` at a free loopback port, and that address; it stops
    when the block ends."""
    async with trio.open_nursery() as nursery:
        server = SmbDirectServer(dev)
        addr: tuple[str, int] = await nursery.start(server.serve, "127.0.0.1", 0, handler)
        yield server, addr
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_64_mib_each_way_send_receive_rdma_write_and_read(
    server_dev: IwarpDevice, client_dev: IwarpDevice
) -> None:
    handler = Handler()
    async with serving(server_dev, handler) as (server, addr):
        async with connect(client_dev, *addr) as ch:
            # 64 MiB as 1 MiB upper-layer messages, fragmented and reassembled by SMB Direct
            stream = pattern(1, 64 * MiB)
            view = memoryview(stream)
            step = ch.max_message_size - 1
            for off in range(0, len(stream), step):
                await ch.send_message([b"S", view[off : off + step]])
            await ch.send_message([b"D"])
            reply = await ch.receive_message()
            assert bytes(reply) == b"D" + hashlib.sha256(stream).digest()

            # RDMA write: the server fills 64 MiB of the client's memory (SMB2 READ)
            sink = bytearray(64 * MiB)
            reg = ch.register_buffer(sink, remote_write=True)
            (d,) = reg.descriptors
            for i in range(0, len(sink), CHUNK):
                desc = wire.BufferDescriptorV1(d.offset + i, d.token, CHUNK)
                await ch.send_message([b"W", struct.pack("<Q", i), encode_descriptors([desc])])
                assert bytes(await ch.receive_message()) == b"ok"
            for i in range(0, len(sink), CHUNK):
                assert sink[i : i + CHUNK] == pattern(i, CHUNK)
            reg.deregister()

            # RDMA read: the server pulls 64 MiB of the client's memory (SMB2 WRITE),
            # two descriptors per request as Windows sends them
            source = bytearray(pattern(2, 64 * MiB))
            reg = ch.register_buffer(source, remote_write=False)
            (d,) = reg.descriptors
            for i in range(0, len(source), CHUNK):
                half = CHUNK // 2
                descs = [
                    wire.BufferDescriptorV1(d.offset + i, d.token, half),
                    wire.BufferDescriptorV1(d.offset + i + half, d.token, half),
                ]
                await ch.send_message([b"R", encode_descriptors(descs)])
                got = bytes(await ch.receive_message())
                assert got == b"R" + hashlib.sha256(source[i : i + CHUNK]).digest()
            reg.deregister()
            stats = ch.statistics()
            assert stats["messages_in"] == 1 + 8 + 8
        with trio.fail_after(10):
            while server.channels:
                await trio.sleep(0.01)
        assert server.statistics()["accepted"] == 1
        assert all(isinstance(e, ChannelClosed) for e in handler.errors)
    assert len(server_dev.stags) == 0 and len(client_dev.stags) == 0


async def test_rdma_v1_invalidate_reply_invalidates_client_region(
    server_dev: IwarpDevice, client_dev: IwarpDevice
) -> None:
    async with serving(server_dev, Handler()) as (_, addr), connect(client_dev, *addr) as ch:
        sink = bytearray(65536)
        reg = ch.register_buffer(sink, remote_write=True)
        await ch.send_message([b"I", struct.pack("<Q", 9), encode_descriptors(reg.descriptors)])
        assert bytes(await ch.receive_message()) == b"ok"
        assert bytes(sink) == pattern(9, 65536)
        assert reg.invalidated  # Send with Invalidate named its token
        # the server can no longer reach it: its next write gets a Terminate
        await ch.send_message([b"W", struct.pack("<Q", 9), encode_descriptors(reg.descriptors)])
        with pytest.raises(SmbDirectError):
            await ch.receive_message()
    assert len(server_dev.stags) == 0 and len(client_dev.stags) == 0


async def _raw_client(
    dev: IwarpDevice, addr: tuple[str, int], messages: list[bytes]
) -> list[bytes]:
    """A peer that speaks raw RDMA Sends (no SMB Direct core): returns what it received."""
    pd = dev.alloc_pd()
    cq = dev.create_cq(1024)
    qp = dev.create_qp(pd, cq, cq)
    recv = pd.reg_mr(64 * 1364, Access.LOCAL_WRITE)
    for i in range(64):
        qp.post_recv(100 + i, [Sge(recv, i * 1364, 1364)])
    await qp.connect(*addr)
    got: list[bytes] = []
    closed = False

    async def collect(until: int) -> None:
        nonlocal closed
        with trio.move_on_after(5):
            while len(got) < until and not closed:
                for wc in await cq.poll():
                    if wc.wr_id >= 100 and wc.status is WcStatus.SUCCESS:
                        i = wc.wr_id - 100
                        got.append(bytes(recv.buf[i * 1364 : i * 1364 + wc.byte_len]))
                    closed = closed or wc.status is WcStatus.FLUSHED

    for i, m in enumerate(messages):
        mr = pd.reg_mr(bytearray(m), Access(0))
        qp.post_send(i, [Sge(mr, 0, len(m))])
        if i == 0 and len(messages) > 1:
            await collect(1)  # the negotiate response, before any data message
    await collect(len(got) + 10**6)
    await qp.disconnect()
    return got


NEGOTIATE = wire.NegotiateRequest(0x100, 0x100, 4, 1364, 1364, 131072).encode()


def data(granted: int, payload: bytes = b"\xfeSMB", remaining: int = 0, offset: int = 24) -> bytes:
    hdr = wire.DataHeader(4, granted, 0, remaining, offset, len(payload)).encode()
    return hdr[:12] + struct.pack("<I", offset) + hdr[16:] + payload


@pytest.mark.parametrize(
    ("messages", "why"),
    [
        ([NEGOTIATE[:10]], "negotiate request of 10 bytes"),
        ([NEGOTIATE, data(4, offset=28)], "DataOffset"),
        ([NEGOTIATE, data(4, remaining=1 << 20)], "MaxFragmentedSize"),
        ([NEGOTIATE, data(4, payload=b"x" * 10, remaining=5), data(0, b"y" * 3)], "announced"),
        # 4 credits granted, 20 messages sent: SMB Direct's credit check or, if the
        # messages outrun the reposting, iWARP's "no receive posted" Terminate
        ([NEGOTIATE] + [data(0)] * 20, "without a receive credit|Send with no receive posted"),
    ],
)
async def test_ms_smbd_3_1_5_8_bad_peers_are_disconnected_and_freed(
    server_dev: IwarpDevice,
    client_dev: IwarpDevice,
    messages: list[bytes],
    why: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = Handler()
    async with serving(server_dev, handler) as (server, addr):
        got = await _raw_client(client_dev, addr, messages)
        with trio.fail_after(10):
            while server.channels:
                await trio.sleep(0.01)
        assert handler.messages <= 4  # only messages sent within the credits got through
        if len(messages) > 1:
            resp = wire.NegotiateResponse.decode(got[0])
            assert resp.status == 0 and resp.credits_granted >= 3
    assert re.search(why, caplog.text)
    assert len(server_dev.stags) == 0  # every region and buffer of the channel is freed


async def test_peer_vanishing_mid_transfer_fails_the_rdma_read(
    server_dev: IwarpDevice, client_dev: IwarpDevice
) -> None:
    handler = Handler()
    async with serving(server_dev, handler) as (server, addr):
        async with connect(client_dev, *addr) as ch:
            source = bytearray(32 * MiB)
            reg = ch.register_buffer(source, remote_write=False)
            (d,) = reg.descriptors
            descs = [wire.BufferDescriptorV1(d.offset, d.token, CHUNK)] * 4
            await ch.send_message([b"R", encode_descriptors(descs)])
            await trio.sleep(0.05)  # the read is under way
            await ch.qp.disconnect()  # the client host goes away
        with trio.fail_after(10):
            while server.channels:
                await trio.sleep(0.01)
        assert handler.errors and isinstance(handler.errors[0], SmbDirectError)
    assert len(server_dev.stags) == 0 and len(client_dev.stags) == 0


@pytest.mark.parametrize("grants_credits", [True, False])
async def test_ms_smbd_3_1_6_2_silent_peer_is_dropped_after_keepalive(
    client_dev: IwarpDevice, caplog: pytest.LogCaptureFixture, grants_credits: bool
) -> None:
    """The idle timer sends a keep-alive with RESPONSE_REQUESTED; a peer that answers
    nothing within the keep-alive timeout is disconnected, and so is a peer that never
    granted the credit the keep-alive needs."""
    caplog.set_level(logging.INFO, logger="rdma.smbdirect")
    smbd = SmbDirectConfig(keepalive_interval=0.3, keepalive_timeout=0.3)
    async with IwarpDevice.open(name="server") as server_dev, trio.open_nursery() as nursery:
        server = SmbDirectServer(server_dev, TransportConfig(smbd=smbd))
        addr = await nursery.start(server.serve, "127.0.0.1", 0, Handler())
        messages = [NEGOTIATE]
        if grants_credits:
            messages.append(wire.DataHeader(4, 4, 0, 0, 0, 0).encode())
        with trio.fail_after(10):
            got = await _raw_client(client_dev, addr, messages)  # then stays silent
        if grants_credits:
            keepalive, _ = wire.decode_data(memoryview(got[-1]))
            assert keepalive.flags & wire.FLAG_RESPONSE_REQUESTED
        else:
            assert len(got) == 1  # the negotiate response, then nothing could be sent
        with trio.fail_after(10):
            while server.channels:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert "no response to keep-alive" in caplog.text
    assert len(server_dev.stags) == 0


async def test_bad_peers_do_not_disturb_other_channels(
    server_dev: IwarpDevice, client_dev: IwarpDevice
) -> None:
    """A garbage TCP peer, a bad-CRC peer and a client handing out a descriptor beyond its
    region are each cut off; a well-behaved channel beside them keeps working."""
    handler = Handler()
    async with serving(server_dev, handler) as (server, addr):
        async with connect(client_dev, *addr) as good:
            await good.send_message([b"S", b"before"])
            # 1. not MPA at all
            stream = await trio.open_tcp_stream(*addr)
            await stream.send_all(b"GET / HTTP/1.1\r\n\r\n" + bytes(64))
            with trio.fail_after(15):
                assert await stream.receive_some(100) == b""  # closed on us
            await stream.aclose()
            # 2. MPA, then an FPDU whose CRC is wrong: Terminate (LLP, MPA CRC error), close
            stream = await trio.open_tcp_stream(*addr)
            await stream.send_all(mpa.encode_frame(mpa.MpaFrame(reply=False, crc=True)))
            reply = b""
            with trio.fail_after(15):
                while len(reply) < 24:
                    reply += await stream.receive_some(24 - len(reply))
            assert mpa.decode_frame(reply, reply=True).crc
            hdr = ddp.untagged_header(ddp.Opcode.SEND, True, ddp.QN_SEND, 1, 0)
            fpdu = bytearray(b"".join(bytes(b) for b in mpa.encode_fpdu(hdr, [NEGOTIATE], True)))
            fpdu[-1] ^= 0x55
            await stream.send_all(bytes(fpdu))
            rest = b""
            with trio.fail_after(15):
                while chunk := await stream.receive_some(4096):
                    rest += chunk
            got = mpa.next_fpdu(memoryview(rest), crc=True)
            assert got is not None
            term = ddp.Terminate.decode(ddp.decode_segment(got[0]).payload)
            assert (term.layer, term.code) == (2, 0x02)  # LLP, MPA CRC error
            await stream.aclose()
            # 3. a descriptor that reaches past the client's region: RDMAP base/bounds
            async with connect(client_dev, *addr) as bad:
                small = bad.register_buffer(bytearray(4096), remote_write=False)
                (d,) = small.descriptors
                lie = wire.BufferDescriptorV1(d.offset, d.token, 1 << 20)
                await bad.send_message([b"R", encode_descriptors([lie])])
                with pytest.raises(SmbDirectError):
                    await bad.receive_message()
            # the good channel is unaffected
            big = pattern(5, 3 * MiB)
            for off in range(0, len(big), good.max_message_size - 1):
                await good.send_message([b"S", big[off : off + good.max_message_size - 1]])
            await good.send_message([b"D"])
            digest = bytes(await good.receive_message())
            assert digest == b"D" + hashlib.sha256(b"before" + big).digest()
        with trio.fail_after(10):
            while server.channels:
                await trio.sleep(0.01)
        assert server.statistics()["accepted"] == 3  # MPA-level: the bad-CRC peer too
        assert server_dev.statistics()["protocol_errors"] >= 2
    assert len(server_dev.stags) == 0 and len(client_dev.stags) == 0


async def test_concurrent_rdma_transfers_wait_for_room(
    server_dev: IwarpDevice, client_dev: IwarpDevice
) -> None:
    """32 SMB2-READ-like requests in flight at once: the server's transfers queue behind
    the per-channel limit instead of overflowing the send queue."""

    async def concurrent(ch: SmbDirectChannel) -> None:
        async def one(body: memoryview) -> None:
            (seed,) = struct.unpack_from("<Q", body, 0)
            descs = decode_descriptors(body[8:])
            await ch.rdma_write(descs, pattern(seed, descs[0].length))
            await ch.send_message([b"ok", struct.pack("<Q", seed)])

        async with trio.open_nursery() as nursery:
            while True:
                msg = await ch.receive_message()
                nursery.start_soon(one, msg[1:])

    async with serving(server_dev, concurrent) as (_, addr), connect(client_dev, *addr) as ch:
        bufs = [bytearray(256 * 1024) for _ in range(32)]
        regs = [ch.register_buffer(b, remote_write=True) for b in bufs]
        for i, reg in enumerate(regs):
            await ch.send_message([b"W", struct.pack("<Q", i), encode_descriptors(reg.descriptors)])
        done = set()
        for _ in regs:
            reply = bytes(await ch.receive_message())
            done.add(struct.unpack_from("<Q", reply, 2)[0])
        assert done == set(range(32))
        for i, b in enumerate(bufs):
            assert b == pattern(i, len(b))
    assert len(server_dev.stags) == 0 and len(client_dev.stags) == 0


async def test_exceptions_from_the_callers_body_come_back_unwrapped(
    server_dev: IwarpDevice, client_dev: IwarpDevice
) -> None:
    async with serving(server_dev, Handler()) as (_, addr):
        with pytest.raises(KeyError):
            async with connect(client_dev, *addr):
                raise KeyError("from the body")
    with pytest.raises(KeyError):
        async with IwarpDevice.open():
            raise KeyError("from the body")
    assert len(client_dev.stags) == 0
