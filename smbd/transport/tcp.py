"""[MS-SMB2] 2.1 Direct TCP transport: each message is preceded by a 4-byte header,
a zero byte and a 24-bit big-endian length.

Each message is received into its own buffer sized from that length (``recv_into``), and
sent with ``sendmsg`` from the caller's parts with no joining copy.
"""

from __future__ import annotations

import contextlib
import errno
import socket as _stdsocket
import struct
from collections.abc import Sequence

import trio

from smbd.transport.base import Buffer, FramingError, TransportClosed
from smbd.transport.buffers import POOL

_PREFIX = struct.Struct(">I")
MAX_FRAME = 0x00FFFFFF  # what 24 bits can say
_IOV_MAX = 1024


def _sockname(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)


class TCPTransport:
    """One direct-TCP connection.

    ``max_message_size`` bounds what ``receive`` accepts (the caller raises it after
    NEGOTIATE); a frame that declares more is a FramingError. Once the first byte of a
    frame has arrived the rest must follow within ``frame_timeout`` seconds; a send that
    makes no progress for ``send_timeout`` seconds (a peer that never reads) raises
    TransportClosed.
    """

    name = "tcp"

    def __init__(
        self,
        sock: trio.socket.SocketType,
        *,
        max_message_size: int = 1 << 20,
        frame_timeout: float = 60.0,
        send_timeout: float = 60.0,
    ) -> None:
        self.sock = sock
        self.max_message_size = max_message_size
        self.frame_timeout = frame_timeout
        self.send_timeout = send_timeout
        self._send_lock = trio.Lock()
        self._prefix = bytearray(4)
        self.bytes_received = 0
        self.bytes_sent = 0
        self.messages_received = 0
        self.messages_sent = 0
        try:
            self.peer = _sockname(sock.getpeername())
            self.local = _sockname(sock.getsockname())
        except OSError:
            self.peer = self.local = "?"
        with contextlib.suppress(OSError):
            sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)

    async def _recv_exactly(self, view: memoryview, *, first: bool) -> None:
        got = 0
        n = len(view)
        while got < n:
            try:
                k = await self.sock.recv_into(view[got:], n - got)
            except OSError as e:
                raise TransportClosed(f"receive failed: {e}") from None
            if k == 0:
                if first and got == 0:
                    raise TransportClosed("end of stream")
                raise TransportClosed("end of stream inside a frame")
            got += k

    async def receive(self) -> memoryview:
        prefix = memoryview(self._prefix)
        # Wait as long as it takes for a frame to start (idle policy is the caller's),
        # then bound the time the rest of it may take.
        try:
            k = await self.sock.recv_into(prefix, 4)
        except OSError as e:
            raise TransportClosed(f"receive failed: {e}") from None
        if k == 0:
            raise TransportClosed("end of stream")
        with trio.move_on_after(self.frame_timeout) as scope:
            if k < 4:
                await self._recv_exactly(prefix[k:], first=False)
            (word,) = _PREFIX.unpack_from(prefix)
            if word >> 24:
                raise FramingError(f"direct TCP header 0x{word:08x}: first byte is not zero")
            length = word & MAX_FRAME
            if length == 0:
                raise FramingError("empty frame")
            if length > self.max_message_size:
                raise FramingError(
                    f"frame of {length} bytes exceeds the limit of {self.max_message_size}"
                )
            view = POOL.take(length)
            await self._recv_exactly(view, first=False)
        if scope.cancelled_caught:
            raise TransportClosed(f"frame not completed within {self.frame_timeout} s")
        self.bytes_received += 4 + length
        self.messages_received += 1
        return view

    def release(self, message: memoryview) -> None:
        """The caller is done with a message ``receive`` returned: its buffer may be
        reused (it is only when no slice of it survives)."""
        POOL.give(message)

    async def send(self, parts: Sequence[Buffer]) -> None:
        total = sum(len(p) for p in parts)
        if total > MAX_FRAME:
            raise ValueError(f"message of {total} bytes does not fit a direct TCP frame")
        views = [memoryview(_PREFIX.pack(total))]
        views.extend(memoryview(p).cast("B") for p in parts if len(p))
        async with self._send_lock:
            with trio.move_on_after(self.send_timeout) as scope:
                await self._sendmsg_all(views)
            if scope.cancelled_caught:
                raise TransportClosed(f"peer did not read for {self.send_timeout} s")
        self.bytes_sent += 4 + total
        self.messages_sent += 1

    async def _sendmsg_all(self, views: list[memoryview]) -> None:
        i = 0
        while i < len(views):
            batch = views[i : i + _IOV_MAX]
            try:
                sent = await self.sock.sendmsg(batch)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise TransportClosed(f"send failed: {e}") from None
            # skip what was sent; keep the rest of a partly sent part
            while sent and i < len(views):
                n = len(views[i])
                if sent >= n:
                    sent -= n
                    i += 1
                else:
                    views[i] = views[i][sent:]
                    sent = 0

    async def aclose(self) -> None:
        self.sock.close()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> dict[str, int]:
        return {
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "messages_received": self.messages_received,
            "messages_sent": self.messages_sent,
        }


async def open_tcp_listeners(
    listen: Sequence[tuple[str, int]], backlog: int = 128
) -> list[trio.socket.SocketType]:
    """Bound, listening sockets for each (host, port); port 0 picks a free port."""
    socks: list[trio.socket.SocketType] = []
    try:
        for host, port in listen:
            infos = await trio.socket.getaddrinfo(
                host or None, port, type=_stdsocket.SOCK_STREAM, flags=_stdsocket.AI_PASSIVE
            )
            family, type_, proto, _canon, addr = infos[0]
            sock = trio.socket.socket(family, type_, proto)
            socks.append(sock)
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
            if family == _stdsocket.AF_INET6:
                sock.setsockopt(_stdsocket.IPPROTO_IPV6, _stdsocket.IPV6_V6ONLY, 1)
            await sock.bind(addr)
            sock.listen(backlog)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks
