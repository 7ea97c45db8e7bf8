"""[MS-SMB2] 2.1 direct TCP framing over a socket pair."""

from __future__ import annotations

import struct

import pytest
import trio

from smbd.transport import FramingError, TransportClosed
from smbd.transport.tcp import TCPTransport


async def _pair(**kw: float) -> tuple[TCPTransport, trio.socket.SocketType]:
    a, b = trio.socket.socketpair()
    return TCPTransport(a, **kw), b  # type: ignore[arg-type]


async def test_frames_split_across_segments() -> None:
    t, peer = await _pair()
    with peer:
        payload = bytes(range(256)) * 40
        wire = struct.pack(">I", len(payload)) + payload + struct.pack(">I", 3) + b"abc"

        async def dribble() -> None:
            for i in range(0, len(wire), 7):
                await peer.send(wire[i : i + 7])

        async with trio.open_nursery() as n:
            n.start_soon(dribble)
            assert bytes(await t.receive()) == payload
            assert bytes(await t.receive()) == b"abc"
        peer.shutdown(2)
        with pytest.raises(TransportClosed):
            await t.receive()
    await t.aclose()
    assert t.messages_received == 2


async def test_send_many_parts() -> None:
    t, peer = await _pair()
    with peer:
        parts = [bytes([i % 256]) * 3 for i in range(3000)]  # more than IOV_MAX
        expected = b"".join(parts)
        async with trio.open_nursery() as n:
            n.start_soon(t.send, parts)
            got = b""
            while len(got) < 4 + len(expected):
                got += await peer.recv(1 << 16)
        assert got == struct.pack(">I", len(expected)) + expected
    await t.aclose()


@pytest.mark.parametrize("prefix", [b"\x01\x00\x00\x10", b"\x00\x00\x00\x00", b"\x00\x10\x00\x01"])
async def test_bad_frames(prefix: bytes) -> None:
    t, peer = await _pair()
    t.max_message_size = 1 << 20
    with peer:
        await peer.send(prefix)
        with pytest.raises(FramingError):
            await t.receive()
    await t.aclose()


async def test_frame_that_never_completes() -> None:
    t, peer = await _pair(frame_timeout=0.2)
    with peer:
        await peer.send(struct.pack(">I", 100) + b"x" * 10)
        with pytest.raises(TransportClosed, match="not completed"):
            await t.receive()
    await t.aclose()


async def test_cut_inside_a_frame() -> None:
    t, peer = await _pair()
    await peer.send(struct.pack(">I", 100) + b"x" * 10)
    peer.close()
    with pytest.raises(TransportClosed, match="inside a frame"):
        await t.receive()
    await t.aclose()


async def test_peer_that_never_reads() -> None:
    t, peer = await _pair(send_timeout=0.3)
    with peer, pytest.raises(TransportClosed, match="did not read"):
        for _ in range(1000):
            await t.send([bytes(1 << 20)])
    await t.aclose()


async def test_pipelined_frames_in_one_segment() -> None:
    """Several small frames and the start of a large one arrive in one segment: each comes
    out whole and in order, the large one (beyond the read-ahead buffer) too."""
    t, peer = await _pair()
    t.max_message_size = 1 << 20
    with peer:
        small = [bytes([i]) * (64 + i) for i in range(20)]
        large = bytes(range(256)) * 1024  # 256 KiB: received straight into its own buffer
        wire = b"".join(struct.pack(">I", len(m)) + m for m in [*small, large, b"end"])

        async def send_all() -> None:
            view = memoryview(wire)
            while view:
                n = await peer.send(view[: 1 << 16])
                view = view[n:]

        async with trio.open_nursery() as n:
            n.start_soon(send_all)
            for m in small:
                assert bytes(await t.receive()) == m
            assert bytes(await t.receive()) == large
            assert bytes(await t.receive()) == b"end"
    await t.aclose()
    assert t.messages_received == len(small) + 2


async def test_concurrent_sends_do_not_interleave() -> None:
    t, peer = await _pair()
    with peer:
        msgs = [bytes([i]) * (300_000 + i) for i in range(4)]  # each larger than a socket buffer
        got = bytearray()
        expected = sum(4 + len(m) for m in msgs)

        async def drain() -> None:
            while len(got) < expected:
                got.extend(await peer.recv(1 << 16))

        async with trio.open_nursery() as n:
            n.start_soon(drain)
            for m in msgs:
                n.start_soon(t.send, [m[:1000], m[1000:]])
        view = memoryview(got)
        seen = set()
        while view:
            (length,) = struct.unpack(">I", view[:4])
            body = bytes(view[4 : 4 + length])
            assert body == bytes([body[0]]) * length  # one message, not pieces of several
            seen.add(body[0])
            view = view[4 + length :]
        assert seen == {0, 1, 2, 3}
    await t.aclose()
