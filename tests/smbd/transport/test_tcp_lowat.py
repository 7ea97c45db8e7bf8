"""[MS-SMB2] 2.1 direct TCP: the rest of a large frame is awaited with SO_RCVLOWAT (one
wakeup when it is there, not one per segment), and the socket is back to waking on the
first byte before the next frame is awaited."""

from __future__ import annotations

import socket
import struct

import pytest
import trio

from smbd.transport import TransportClosed
from smbd.transport.tcp import TCPTransport


async def _tcp_pair(frame_timeout: float = 60.0) -> tuple[TCPTransport, trio.socket.SocketType]:
    listener = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with listener:
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        await client.connect(listener.getsockname())
        server, _addr = await listener.accept()
    return TCPTransport(server, frame_timeout=frame_timeout), client


def _lowat(t: TCPTransport) -> int:
    return int(t.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))


async def test_large_frame_in_slow_pieces_then_a_small_one() -> None:
    t, peer = await _tcp_pair()
    t.max_message_size = 4 << 20
    with peer:
        big = bytes(range(256)) * (3 << 12)  # 3 MiB: more than the low-water cap
        wire = struct.pack(">I", len(big)) + big + struct.pack(">I", 3) + b"abc"
        lowats: list[int] = []

        async def dribble() -> None:
            body_end = len(wire) - 7
            for i in range(0, body_end, 256 * 1024):
                await _send_all(peer, wire[i : min(i + 256 * 1024, body_end)])
                await trio.sleep(0.01)
                lowats.append(_lowat(t))
            await trio.sleep(0.05)
            await _send_all(peer, wire[len(wire) - 7 :])

        async with trio.open_nursery() as n:
            n.start_soon(dribble)
            got = await t.receive()
            assert bytes(got) == big
            assert _lowat(t) == 1  # reset before the next frame is awaited
            with trio.fail_after(5):  # the small frame is not held back by a low-water mark
                assert bytes(await t.receive()) == b"abc"
        # while the big frame was incomplete, the wait asked for the missing bytes
        assert max(lowats) > 1
        assert max(lowats) <= 1 << 20
    await t.aclose()


async def _send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = await sock.send(view)
        view = view[n:]


async def test_large_frame_that_never_completes_still_times_out() -> None:
    t, peer = await _tcp_pair(frame_timeout=0.3)
    t.max_message_size = 4 << 20
    with peer:
        await _send_all(peer, struct.pack(">I", 2 << 20) + b"x" * (200 * 1024))
        with pytest.raises(TransportClosed, match="not completed"):
            await t.receive()
    await t.aclose()


async def test_large_frame_cut_by_the_peer() -> None:
    t, peer = await _tcp_pair()
    t.max_message_size = 4 << 20
    await _send_all(peer, struct.pack(">I", 2 << 20) + b"x" * (200 * 1024))
    peer.close()
    with pytest.raises(TransportClosed, match="inside a frame"):
        await t.receive()
    await t.aclose()
