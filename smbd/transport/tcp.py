"""[MS-SMB2] 2.1 Direct TCP transport: each message is preceded by a 4-byte header,
a zero byte and a 24-bit big-endian length.

Each message is returned in a buffer of its own sized from that length (small ones through a
per-connection read-ahead buffer, large ones received straight into it with ``recv_into``),
and sent with ``sendmsg`` from the caller's parts with no joining copy.
"""

from __future__ import annotations

import contextlib
import math
import socket as _stdsocket
import struct
from collections.abc import Sequence

import trio

from smbd.transport.base import Buffer, FramingError, TransportClosed
from smbd.transport.buffers import POOL

_PREFIX = struct.Struct(">I")
MAX_FRAME = 0x00FFFFFF  # what 24 bits can say
_IOV_MAX = 1024
_READ_AHEAD = 64 * 1024  # per connection; messages up to this size are received through it
# A large frame's rest is awaited with SO_RCVLOWAT set to what is missing, up to this much:
# one wakeup for the rest of a 1 MiB WRITE instead of one per 64 KiB segment
_LOWAT_MAX = 1 << 20


def _sockname(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)


class TCPTransport:
    """One direct-TCP connection.

    ``max_message_size`` bounds what ``receive`` accepts (the caller raises it after
    NEGOTIATE); a frame that declares more is a FramingError. ``align_at``: the offset in
    a large frame whose byte should land on a cache line (see smbd.transport.buffers).
    Once the first byte of a frame has arrived the rest must follow within
    ``frame_timeout`` seconds; a send that makes no progress for ``send_timeout`` seconds
    (a peer that never reads) raises TransportClosed.
    """

    name = "tcp"

    def __init__(
        self,
        sock: trio.socket.SocketType,
        *,
        max_message_size: int = 1 << 20,
        frame_timeout: float = 60.0,
        send_timeout: float = 60.0,
        align_at: int = 0,
    ) -> None:
        self.sock = sock
        # a large frame is received into a pool buffer placed so that its byte at this
        # offset (where the bulk of the largest messages starts) is cache-line aligned
        self.align_at = align_at
        self.max_message_size = max_message_size
        self.frame_timeout = frame_timeout
        self.send_timeout = send_timeout
        self._send_lock = trio.Lock()
        # the stdlib socket under trio's wrapper (non-blocking), used directly; None makes
        # every call go through trio's socket methods
        raw = getattr(sock, "_sock", None)
        self._raw: _stdsocket.socket | None = raw if isinstance(raw, _stdsocket.socket) else None
        self._rbuf = bytearray(_READ_AHEAD)
        self._rview = memoryview(self._rbuf)
        self._rpos = 0  # unconsumed read-ahead bytes are _rbuf[_rpos:_rend]
        self._rend = 0
        self._waited = False
        self._lowat = 1  # the socket's SO_RCVLOWAT as last set
        self._lowat_ok = hasattr(_stdsocket, "SO_RCVLOWAT")
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

    # -- receiving ------------------------------------------------------------------------
    #
    # Bytes are read into a read-ahead buffer, so a small message (or several pipelined
    # ones) arrives with one recv instead of one for the length prefix and one for the
    # body; it is then copied into a buffer of its own. A large message gets its own pool
    # buffer: what the read-ahead holds of it is copied, the rest is received straight
    # into it. The socket calls go to the stdlib socket under trio's wrapper and wait with
    # wait_readable/wait_writable only when the kernel has nothing: trio's socket methods
    # yield to the scheduler on every successful call, two or three scheduler passes per
    # request that cost more than the request's own work.

    async def _recv_into(self, view: memoryview, deadline: float, *, rest: int = 0) -> int:
        """Receive into ``view``. ``rest``: the bytes of the current frame still to come;
        a wait for them asks the kernel to report readability only once that many
        (at most ``_LOWAT_MAX``) are queued (SO_RCVLOWAT), instead of at every segment."""
        raw = self._raw
        if raw is None:
            with trio.CancelScope(deadline=deadline) as scope:
                try:
                    return await self.sock.recv_into(view, len(view))
                except OSError as e:
                    raise TransportClosed(f"receive failed: {e}") from None
            raise TransportClosed(f"frame not completed within {self.frame_timeout} s")
        while True:
            try:
                return raw.recv_into(view, len(view))
            except BlockingIOError:
                pass
            except InterruptedError:
                continue
            except OSError as e:
                raise TransportClosed(f"receive failed: {e}") from None
            self._waited = True
            if rest > 1 and self._lowat_ok:
                self._set_lowat(min(rest, _LOWAT_MAX))
            try:
                if deadline == math.inf:  # between frames: no cancel scope needed
                    await trio.lowlevel.wait_readable(raw)
                    continue
                with trio.CancelScope(deadline=deadline) as scope:
                    await trio.lowlevel.wait_readable(raw)
            except trio.ClosedResourceError:
                raise TransportClosed("closed") from None
            if scope.cancelled_caught:
                raise TransportClosed(f"frame not completed within {self.frame_timeout} s")

    def _set_lowat(self, value: int) -> None:
        if value == self._lowat or self._raw is None:
            return
        try:
            self._raw.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_RCVLOWAT, value)
        except OSError:
            self._lowat_ok = False  # not supported here: plain waits
            return
        self._lowat = value

    async def _fill(self, deadline: float, *, first: bool = False) -> None:
        """Receive more into the read-ahead buffer, moving what it holds to its start."""
        if self._rpos:
            held = self._rend - self._rpos
            self._rview[:held] = self._rview[self._rpos : self._rend]
            self._rpos, self._rend = 0, held
        k = await self._recv_into(self._rview[self._rend :], deadline)
        if k == 0:
            if first:
                raise TransportClosed("end of stream")
            raise TransportClosed("end of stream inside a frame")
        self._rend += k

    async def receive(self) -> memoryview:
        self._waited = False
        if self._rend == self._rpos:
            # wait as long as it takes for a frame to start (idle policy is the caller's)
            await self._fill(math.inf, first=True)
        # once its first byte is here, the rest of the frame must follow in frame_timeout
        deadline = trio.current_time() + self.frame_timeout
        while self._rend - self._rpos < 4:
            await self._fill(deadline)
        (word,) = _PREFIX.unpack_from(self._rbuf, self._rpos)
        if word >> 24:
            raise FramingError(f"direct TCP header 0x{word:08x}: first byte is not zero")
        length = word & MAX_FRAME
        if length == 0:
            raise FramingError("empty frame")
        if length > self.max_message_size:
            raise FramingError(
                f"frame of {length} bytes exceeds the limit of {self.max_message_size}"
            )
        self._rpos += 4
        if length <= _READ_AHEAD:
            while self._rend - self._rpos < length:
                await self._fill(deadline)
            view = POOL.take(length)
            view[:] = self._rview[self._rpos : self._rpos + length]
            self._rpos += length
        else:
            view = POOL.take(length, self.align_at)
            got = self._rend - self._rpos
            view[:got] = self._rview[self._rpos : self._rend]
            self._rpos = self._rend = 0
            try:
                while got < length:
                    k = await self._recv_into(view[got:], deadline, rest=length - got)
                    if k == 0:
                        raise TransportClosed("end of stream inside a frame")
                    got += k
            finally:
                if self._lowat != 1:
                    self._set_lowat(1)  # the next frame's first byte is news again
        if self._rpos == self._rend:
            self._rpos = self._rend = 0
        self.bytes_received += 4 + length
        self.messages_received += 1
        if not self._waited:
            # everything was already here (a client pipelining requests): still let the
            # other tasks run and a cancellation in, once per message
            await trio.lowlevel.checkpoint()
        return view

    def release(self, message: memoryview) -> None:
        """The caller is done with a message ``receive`` returned: its buffer may be
        reused (it is only when no slice of it survives)."""
        POOL.give(message)

    # -- sending --------------------------------------------------------------------------

    async def send(self, parts: Sequence[Buffer]) -> None:
        total = 0
        views = [memoryview(b"")]  # the length prefix, once the total is known
        for p in parts:
            view = memoryview(p)
            if view.itemsize != 1 or view.ndim != 1:
                view = view.cast("B")  # lengths below are in bytes
            n = len(view)
            if n:
                total += n
                views.append(view)
        if total > MAX_FRAME:
            raise ValueError(f"message of {total} bytes does not fit a direct TCP frame")
        views[0] = memoryview(_PREFIX.pack(total))
        lock = self._send_lock
        if lock.locked():
            await lock.acquire()
        else:
            lock.acquire_nowait()  # no scheduler pass when nobody else is sending
        try:
            await self._sendmsg_all(views, 4 + total)
        finally:
            lock.release()
        self.bytes_sent += 4 + total
        self.messages_sent += 1

    async def _wait_writable(self, deadline: float) -> None:
        with trio.CancelScope(deadline=deadline) as scope:
            try:
                if self._raw is None:
                    await self.sock.wait_writable()
                else:
                    await trio.lowlevel.wait_writable(self._raw)
            except trio.ClosedResourceError:
                raise TransportClosed("closed") from None
        if scope.cancelled_caught:
            raise TransportClosed(f"peer did not read for {self.send_timeout} s")

    async def _sendmsg_all(self, views: list[memoryview], left: int) -> None:
        """Send every view (``left`` bytes in all); TransportClosed when no byte goes out
        for ``send_timeout``. The usual case, one sendmsg taking everything, returns
        without reading the clock."""
        raw = self._raw
        i = 0
        deadline = math.inf if raw is not None else trio.current_time() + self.send_timeout
        while True:
            batch = views[i : i + _IOV_MAX] if i or len(views) > _IOV_MAX else views
            try:
                if raw is None:
                    with trio.CancelScope(deadline=deadline) as scope:
                        sent = await self.sock.sendmsg(batch)
                    if scope.cancelled_caught:
                        raise TransportClosed(f"peer did not read for {self.send_timeout} s")
                else:
                    sent = raw.sendmsg(batch)
            except BlockingIOError:
                if deadline == math.inf:  # the timeout counts from the first wait
                    deadline = trio.current_time() + self.send_timeout
                await self._wait_writable(deadline)
                continue
            except InterruptedError:
                continue
            except OSError as e:
                raise TransportClosed(f"send failed: {e}") from None
            left -= sent
            if not left:
                return
            if sent:
                deadline = math.inf if raw is not None else trio.current_time() + self.send_timeout
            # skip what was sent; keep the rest of a partly sent part
            while sent:
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
