"""The userspace iWARP provider: :mod:`rdma.verbs` over TCP on trio.

Each connected queue pair runs two tasks in the device's nursery: a reader that feeds the
:class:`~.engine.Endpoint` with bytes from the socket, and a writer that sends its FPDUs as
iovecs (``sendmsg``) and reports send completions once they are written.  A protocol error
sends the Terminate and closes the socket; the peer closing the socket flushes every posted
work request.  Nothing here blocks the event loop, and nothing escapes the device's nursery.
"""

from __future__ import annotations

import itertools
import logging
import socket as _stdsocket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress

import trio

from .. import verbs
from .._groups import unwrap_single
from ..verbs import (
    Access,
    CompletionQueue,
    QPCap,
    QPState,
    Sge,
    VerbsError,
    WcStatus,
    WorkCompletion,
)
from . import engine as eng
from . import mpa
from .stags import Region, StagTable

log = logging.getLogger("rdma.iwarp")

_IOV_MAX = 1024
_HANDSHAKE_TIMEOUT = 10.0
_CLOSE_DRAIN_TIMEOUT = 5.0
_RECV_SIZE = 1 << 18


class IwarpPD:
    """A protection domain (implements :class:`rdma.verbs.ProtectionDomain`)."""

    def __init__(self, device: IwarpDevice, pd_id: int) -> None:
        self.device = device
        self.pd_id = pd_id

    def reg_mr(self, buffer: int | bytearray | memoryview, access: Access) -> Region:
        return self.device.stags.register(self.pd_id, buffer, access)

    def dealloc(self) -> None:
        pass


async def _send_iov(sock: trio.socket.SocketType, bufs: Sequence[bytes | memoryview]) -> None:
    views = [memoryview(b) for b in bufs if len(b)]
    i = 0
    while i < len(views):
        n = await sock.sendmsg(views[i : i + _IOV_MAX])
        while n:
            head = views[i]
            if n >= len(head):
                n -= len(head)
                i += 1
            else:
                views[i] = head[n:]
                n = 0


class IwarpQP(verbs.QueuePairBase):
    """A reliable connected queue pair (implements :class:`rdma.verbs.QueuePair`)."""

    _numbers = itertools.count(1)

    def __init__(
        self,
        device: IwarpDevice,
        pd: IwarpPD,
        send_cq: CompletionQueue,
        recv_cq: CompletionQueue,
        cap: QPCap,
        endpoint: eng.Endpoint,
        sock: trio.socket.SocketType | None = None,
    ) -> None:
        self.device = device
        self.pd = pd
        self._send_cq = send_cq
        self._recv_cq = recv_cq
        self.cap = cap
        self.endpoint = endpoint
        self._sock = sock
        self._qp_num = next(self._numbers)
        self._state = QPState.INIT
        self._wake = trio.Event()
        self._disconnected = trio.Event()
        self._cancel: trio.CancelScope | None = None
        self._recv_outstanding = 0
        self._send_outstanding = 0
        self._local: tuple[str, int] = ("", 0)
        self._remote: tuple[str, int] = ("", 0)
        self.log = logging.LoggerAdapter(log, {"qp": self._qp_num})
        endpoint.log = self.log

    # -- posting ---------------------------------------------------------------------

    def _views(self, sges: Sequence[Sge], max_sge: int, need_write: bool) -> list[memoryview]:
        if len(sges) > max_sge:
            raise VerbsError(f"{len(sges)} SGEs exceed the queue pair's limit of {max_sge}")
        return [self.device.stags.local(s, self.pd.pd_id, need_write) for s in sges]

    def _check_send(self) -> None:
        if self._state is not QPState.RTS:
            raise VerbsError(f"post_send in state {self._state.value}")
        if self._send_outstanding >= self.cap.max_send_wr:
            raise VerbsError("send queue full")

    def post_recv(self, wr_id: int, sges: Sequence[Sge]) -> None:
        views = self._views(sges, self.cap.max_recv_sge, True)
        if self._state is QPState.ERROR:
            self._push(True, WorkCompletion(wr_id, WcStatus.FLUSHED, verbs.WcOpcode.RECV))
            return
        if self._recv_outstanding >= self.cap.max_recv_wr:
            raise VerbsError("receive queue full")
        if len(views) != 1:
            raise VerbsError("the iWARP provider takes one receive SGE")
        self._recv_outstanding += 1
        self.endpoint.post_recv(wr_id, views[0])

    def post_send(
        self, wr_id: int, sges: Sequence[Sge], *, invalidate_rkey: int | None = None
    ) -> None:
        self._check_send()
        views = self._views(sges, self.cap.max_send_sge, False)
        self._send_outstanding += 1
        self.endpoint.post_send(wr_id, views, invalidate_rkey)
        self._kick()

    def post_rdma_write(self, wr_id: int, sges: Sequence[Sge], remote_addr: int, rkey: int) -> None:
        self._check_send()
        views = self._views(sges, self.cap.max_send_sge, False)
        self._send_outstanding += 1
        self.endpoint.post_write(wr_id, views, rkey, remote_addr)
        self._kick()

    def post_rdma_read(self, wr_id: int, sge: Sge, remote_addr: int, rkey: int) -> None:
        self._check_send()
        self.device.stags.local(sge, self.pd.pd_id, True)
        self._send_outstanding += 1
        self.endpoint.post_read(
            wr_id, sge.mr.lkey, sge.mr.addr + sge.offset, sge.length, rkey, remote_addr
        )
        self._kick()

    # -- completions -------------------------------------------------------------------

    def _push(self, on_recv: bool, wc: WorkCompletion) -> None:
        if on_recv:
            self._recv_outstanding = max(0, self._recv_outstanding - 1)
            cq = self._recv_cq
        else:
            self._send_outstanding = max(0, self._send_outstanding - 1)
            cq = self._send_cq
        if not cq.push(wc) and self._state is not QPState.ERROR:
            self.log.error("completion queue overrun; queue pair to error")
            self.endpoint.close()
            self._set_error()

    def _deliver(self) -> None:
        for on_recv, wc in self.endpoint.take_completions():
            self._push(on_recv, wc)

    def _kick(self) -> None:
        self._wake.set()

    def _set_error(self) -> None:
        if self._state is not QPState.ERROR:
            self._state = QPState.ERROR
        self._deliver()
        self._kick()

    # -- connection --------------------------------------------------------------------

    async def _flush_raw(self) -> None:
        assert self._sock is not None
        bufs, _ = self.endpoint.pull_output()
        if bufs:
            await _send_iov(self._sock, bufs)

    async def _read_until(self, want: type) -> eng.Event:
        assert self._sock is not None
        with trio.fail_after(_HANDSHAKE_TIMEOUT):
            while True:
                data = await self._sock.recv(4096)
                if not data:
                    raise VerbsError("peer closed the connection during MPA setup")
                for ev in self.endpoint.receive_data(data):
                    if isinstance(ev, want | eng.Rejected | eng.ProtocolError):
                        return ev

    async def connect(
        self, host: str, port: int, *, ird: int = 16, ord: int = 16, private_data: bytes = b""
    ) -> None:
        if self._state is not QPState.INIT or self._sock is not None:
            raise VerbsError("connect() on a queue pair that is not fresh")
        ep = self.endpoint
        ep.ird, ep.ord = ird, ord
        family = _stdsocket.AF_INET6 if ":" in host else _stdsocket.AF_INET
        sock = trio.socket.socket(family, _stdsocket.SOCK_STREAM)
        self._sock = sock
        try:
            await sock.connect((host, port))
            sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
            ep.initiate(private_data)
            await self._flush_raw()
            ev = await self._read_until(eng.Established)
        except BaseException:
            sock.close()
            self._set_error()
            raise
        if not isinstance(ev, eng.Established):
            sock.close()
            self._set_error()
            raise VerbsError(f"connection to {host}:{port} refused: {ev!r}")
        self._start()

    def _start(self) -> None:
        assert self._sock is not None
        if self.device.mulpdu is None:
            # RFC 5044 5 / 7: an FPDU fits the TCP segment (EMSS); without markers that
            # leaves EMSS - 6 bytes (ULPDU_Length, CRC) rounded down for the pad.
            try:
                mss = self._sock.getsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_MAXSEG)
            except OSError:
                mss = 1460
            self.endpoint.mulpdu = max(512, min(0xFFFF, (mss - 6) & ~3))
        self._local = self._sock.getsockname()[:2]
        self._remote = self._sock.getpeername()[:2]
        self._state = QPState.RTS
        self.device._qps.add(self)
        self.device._nursery.start_soon(self._run)

    async def _run(self) -> None:
        assert self._sock is not None
        sock = self._sock
        try:
            with trio.CancelScope() as scope:
                self._cancel = scope
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader, nursery.cancel_scope)
                    await self._writer()
                    nursery.cancel_scope.cancel()
        finally:
            self.endpoint.close()
            self._set_error()
            sock.close()
            self.device._qps.discard(self)
            self._disconnected.set()

    async def _reader(self, scope: trio.CancelScope) -> None:
        assert self._sock is not None
        ep = self.endpoint
        # bytes the handshake read past the MPA frame are already inside the endpoint
        ep_events = ep.receive_data(b"")
        self._handle_events(ep_events)
        while not ep.failed:
            try:
                data = await self._sock.recv(_RECV_SIZE)
            except OSError as e:
                self.log.info("connection lost: %s", e)
                data = b""
            if not data:
                if ep.state is not eng.State.ERROR:
                    self.log.info("peer closed the connection")
                ep.close()
                break
            self._handle_events(ep.receive_data(data))
            self._deliver()
            self._kick()
        self._deliver()
        self._kick()

    def _handle_events(self, events: list[eng.Event]) -> None:
        for ev in events:
            if isinstance(ev, eng.ProtocolError | eng.TerminateReceived):
                self.device.errors += 1
                self._set_error()

    async def _writer(self) -> None:
        assert self._sock is not None
        ep = self.endpoint
        while True:
            while ep.has_output():
                bufs, done = ep.pull_output()
                try:
                    await _send_iov(self._sock, bufs)
                except OSError as e:
                    self.log.info("send failed: %s", e)
                    ep.close()
                    for wc in done:
                        self._push(False, wc._replace(status=WcStatus.FLUSHED))
                    return
                for wc in done:
                    self._push(False, wc)
                self._deliver()
            if ep.state is eng.State.ERROR:
                return
            await self._wake.wait()
            self._wake = trio.Event()

    async def disconnect(self) -> None:
        """Drain queued output (bounded), then close: the peer's work is flushed by EOF."""
        if self._sock is None or self._state is QPState.INIT:
            self.endpoint.close()
            self._set_error()
            self._disconnected.set()
            return
        if self._state is QPState.RTS:
            with trio.move_on_after(_CLOSE_DRAIN_TIMEOUT):
                while self.endpoint.has_output() and self.endpoint.state is eng.State.RTS:
                    await trio.sleep(0.005)
            self.endpoint.close()
            self._set_error()
            with suppress(OSError):
                self._sock.shutdown(_stdsocket.SHUT_WR)
        if self._cancel is not None:
            self._cancel.cancel()
        await self._disconnected.wait()

    async def wait_disconnected(self) -> None:
        await self._disconnected.wait()

    def statistics(self) -> dict[str, int]:
        return {
            "bytes_in": self.endpoint.bytes_in,
            "bytes_out": self.endpoint.bytes_out,
            "recv_outstanding": self._recv_outstanding,
            "send_outstanding": self._send_outstanding,
        }


class IwarpConnectionRequest:
    """An MPA Request that arrived on a listener (implements verbs.ConnectionRequest)."""

    def __init__(
        self,
        device: IwarpDevice,
        sock: trio.socket.SocketType,
        endpoint: eng.Endpoint,
        frame: mpa.MpaFrame,
    ) -> None:
        self.device = device
        self._sock = sock
        self._endpoint = endpoint
        self._frame = frame
        self._qp: IwarpQP | None = None
        self._remote: tuple[str, int] = sock.getpeername()[:2]

    @property
    def remote_address(self) -> tuple[str, int]:
        return self._remote

    @property
    def private_data(self) -> bytes:
        return self._frame.private_data

    @property
    def ird(self) -> int:
        return self._frame.ird

    @property
    def ord(self) -> int:
        return self._frame.ord

    def create_qp(
        self,
        pd: verbs.ProtectionDomain,
        send_cq: CompletionQueue,
        recv_cq: CompletionQueue,
        cap: QPCap | None = None,
    ) -> IwarpQP:
        if self._qp is not None:
            raise VerbsError("this request already has a queue pair")
        if not isinstance(pd, IwarpPD):
            raise VerbsError("protection domain of another provider")
        self._endpoint.pd_id = pd.pd_id
        self._qp = IwarpQP(
            self.device, pd, send_cq, recv_cq, cap or QPCap(), self._endpoint, self._sock
        )
        return self._qp

    async def accept(self, *, ird: int = 16, ord: int = 16, private_data: bytes = b"") -> None:
        if self._qp is None:
            raise VerbsError("create_qp() before accept()")
        self._endpoint.accept(ird=ird, ord=ord, private_data=private_data)
        try:
            await self._qp._flush_raw()
        except OSError as e:
            self._sock.close()
            self._qp._set_error()
            raise VerbsError(f"peer went away during accept: {e}") from e
        self._qp._start()

    async def reject(self, private_data: bytes = b"") -> None:
        self._endpoint.reject(private_data)
        bufs, _ = self._endpoint.pull_output()
        try:
            await _send_iov(self._sock, bufs)
        except OSError:
            pass
        finally:
            self._sock.close()
            if self._qp is not None:
                self._qp._set_error()


class IwarpListener:
    def __init__(self, device: IwarpDevice, sock: trio.socket.SocketType, backlog: int) -> None:
        self.device = device
        self._sock = sock
        self._send, self._recv = trio.open_memory_channel[IwarpConnectionRequest](backlog)
        self._scope = trio.CancelScope()
        self._local: tuple[str, int] = sock.getsockname()[:2]

    @property
    def local_address(self) -> tuple[str, int]:
        return self._local

    async def _accept_loop(self) -> None:
        with self._scope:
            async with trio.open_nursery() as nursery:
                while True:
                    try:
                        conn, _ = await self._sock.accept()
                    except OSError as e:
                        log.warning("accept failed: %s", e)
                        await trio.sleep(0.1)
                        continue
                    nursery.start_soon(self._handshake, conn)

    async def _handshake(self, conn: trio.socket.SocketType) -> None:
        dev = self.device
        conn.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        ep = dev._endpoint(active=False, pd_id=0)
        try:
            with trio.fail_after(_HANDSHAKE_TIMEOUT):
                while True:
                    data = await conn.recv(4096)
                    if not data:
                        raise VerbsError("closed before the MPA request")
                    events = ep.receive_data(data)
                    bufs, _ = ep.pull_output()
                    if bufs:
                        await _send_iov(conn, bufs)
                    req = next((e for e in events if isinstance(e, eng.RequestReceived)), None)
                    if req is not None:
                        break
                    if ep.state is eng.State.ERROR:
                        raise VerbsError(f"bad MPA request: {events!r}")
            request = IwarpConnectionRequest(dev, conn, ep, req.frame)
            self._send.send_nowait(request)
        except trio.WouldBlock:
            log.warning("listener backlog full; dropping a connection")
            conn.close()
        except (OSError, VerbsError, trio.TooSlowError) as e:
            dev.errors += 1
            log.info("MPA setup failed: %s", e)
            conn.close()

    async def get_request(self) -> IwarpConnectionRequest:
        return await self._recv.receive()

    async def aclose(self) -> None:
        self._scope.cancel()
        self._sock.close()
        await self._send.aclose()
        while True:
            try:
                req = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            req._sock.close()


class IwarpDevice:
    """The userspace iWARP device (implements :class:`rdma.verbs.Device`)."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        name: str = "iwarp0",
        crc: bool = True,
        mulpdu: int | None = None,
        peer_to_peer: bool = False,
        rtr: mpa.RTR = mpa.RTR.READ,
    ) -> None:
        self._nursery = nursery
        self._name = name
        self.crc = crc
        self.mulpdu = mulpdu
        self.peer_to_peer = peer_to_peer
        self.rtr = rtr
        self.stags = StagTable()
        self._pd_ids = itertools.count(1)
        self._qps: set[IwarpQP] = set()
        self.errors = 0

    @classmethod
    @asynccontextmanager
    async def open(cls, **kwargs: object) -> AsyncIterator[IwarpDevice]:
        with unwrap_single():
            async with trio.open_nursery() as nursery:
                device = cls(nursery, **kwargs)  # type: ignore[arg-type]
                try:
                    yield device
                finally:
                    with trio.CancelScope(shield=True):
                        await device.aclose()
                    nursery.cancel_scope.cancel()

    @property
    def name(self) -> str:
        return self._name

    def _endpoint(self, *, active: bool, pd_id: int) -> eng.Endpoint:
        return eng.Endpoint(
            active=active,
            stags=self.stags,
            pd_id=pd_id,
            crc=self.crc,
            peer_to_peer=self.peer_to_peer,
            rtr=self.rtr,
            mulpdu=self.mulpdu or 0xFFFF,
            logger=log,
        )

    def alloc_pd(self) -> IwarpPD:
        return IwarpPD(self, next(self._pd_ids))

    def create_cq(self, depth: int) -> CompletionQueue:
        return CompletionQueue(depth)

    def create_qp(
        self,
        pd: verbs.ProtectionDomain,
        send_cq: CompletionQueue,
        recv_cq: CompletionQueue,
        cap: QPCap | None = None,
    ) -> IwarpQP:
        if not isinstance(pd, IwarpPD):
            raise VerbsError("protection domain of another provider")
        return IwarpQP(
            self, pd, send_cq, recv_cq, cap or QPCap(), self._endpoint(active=True, pd_id=pd.pd_id)
        )

    async def listen(self, host: str, port: int, backlog: int = 16) -> IwarpListener:
        family = _stdsocket.AF_INET6 if ":" in host else _stdsocket.AF_INET
        sock = trio.socket.socket(family, _stdsocket.SOCK_STREAM)
        sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
        await sock.bind((host, port))
        sock.listen(backlog)
        listener = IwarpListener(self, sock, backlog)
        self._nursery.start_soon(listener._accept_loop)
        return listener

    async def aclose(self) -> None:
        for qp in list(self._qps):
            await qp.disconnect()

    def statistics(self) -> dict[str, int]:
        return {
            "queue_pairs": len(self._qps),
            "memory_regions": len(self.stags),
            "protocol_errors": self.errors,
        }
