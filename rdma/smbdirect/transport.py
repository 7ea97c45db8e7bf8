"""SMB Direct over the verbs layer, on trio: the server (listener -> channels), the client
(connect -> channel), and the channel both sides use.

A :class:`SmbDirectChannel` is what the SMB layer sees beside a TCP connection:

- ``await receive_message()`` -> one reassembled SMB2 message (no 4-byte length prefix);
- ``await send_message([hdr, payload], invalidate_token=None)`` sends one, fragmenting;
- ``await rdma_write(descriptors, data)`` (SMB2 READ) and ``await rdma_read(descriptors,
  into)`` (SMB2 WRITE) move bulk data against the peer's SMB_DIRECT_BUFFER_DESCRIPTOR_V1
  array without it passing through the message path;
- client side: ``register_buffer(buf, remote_write=...)`` gives descriptors to put in a
  READ/WRITE request.

Per channel: one protection domain (a peer's STags are valid only on its own connection),
one completion queue, a receive region cut into ``max_receive_size`` slots, a send region cut
into ``max_send_size`` slots.  Memory is bounded: slots are fixed, at most
``max_pending_messages`` reassembled messages wait for the SMB layer (receives are not
reposted, so the peer runs out of credits, while they wait), one reassembly buffer of at
most ``max_fragmented_receive_size``.  A violation, a keep-alive timeout or the queue pair
failing disconnects the channel and frees every region.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from .. import verbs
from .._groups import unwrap_single
from ..verbs import Access, QPCap, Sge, VerbsError, WcStatus, WorkCompletion
from . import connection as core
from .connection import SmbDirectConfig
from .wire import BufferDescriptorV1

log = logging.getLogger("rdma.smbdirect")

_RECV = 0
_SEND = 1
_RDMA = 2
_KIND_SHIFT = 32
_NEGOTIATE_TIMEOUT = 20.0
MAX_DESCRIPTORS = 16  # per transfer (Windows sends one or two per SMB2 READ/WRITE)
MAX_RDMA_OPS = 8  # transfers in flight per channel; further ones wait
_CLOSE_TIMEOUT = 5.0


class SmbDirectError(Exception):
    """The channel is gone, or an RDMA transfer failed (the SMB layer answers with
    STATUS_CONNECTION_DISCONNECTED / STATUS_IO_DEVICE_ERROR or drops the channel)."""


class ChannelClosed(SmbDirectError):
    pass


@dataclass(frozen=True)
class TransportConfig:
    smbd: SmbDirectConfig = field(default_factory=SmbDirectConfig)
    send_slots: int = 64
    max_pending_messages: int = 8
    ird: int = 16
    ord: int = 16


class _Op:
    __slots__ = ("done", "error", "pending")

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.error: str | None = None
        self.done = trio.Event()


class RegisteredBuffer:
    """A buffer registered for the peer's RDMA access (client side of SMB2 READ/WRITE)."""

    def __init__(self, channel: SmbDirectChannel, mr: verbs.MemoryRegion) -> None:
        self._channel = channel
        self.mr = mr

    @property
    def descriptors(self) -> list[BufferDescriptorV1]:
        return [BufferDescriptorV1(self.mr.addr, self.mr.rkey, self.mr.length)]

    @property
    def invalidated(self) -> bool:
        """True once the peer invalidated it with Send with Invalidate."""
        return not self.mr.valid

    def deregister(self) -> None:
        self._channel._regions.discard(self.mr)
        self.mr.deregister()


class SmbDirectChannel:
    """One SMB Direct connection (either side), driving a :class:`core.SmbDirectConnection`."""

    def __init__(
        self,
        device: verbs.Device,
        pd: verbs.ProtectionDomain,
        qp: verbs.QueuePair,
        cq: verbs.CompletionQueue,
        smbd: core.SmbDirectConnection,
        config: TransportConfig,
    ) -> None:
        self.device = device
        self.pd = pd
        self.qp = qp
        self.cq = cq
        self.smbd = smbd
        self.config = config
        c = config.smbd
        self._recv_slots = c.receive_credit_max
        self._recv_mr = pd.reg_mr(self._recv_slots * c.max_receive_size, Access.LOCAL_WRITE)
        self._send_mr = pd.reg_mr(config.send_slots * c.max_send_size, Access.LOCAL_WRITE)
        self._free_recv = deque(range(self._recv_slots))
        self._free_send = deque(range(config.send_slots))
        self._regions: set[verbs.MemoryRegion] = set()
        self._ops: dict[int, _Op] = {}
        self._op_ids = itertools.count(1)
        self._messages: deque[memoryview] = deque()
        self._message_event = trio.Event()
        self._send_event = trio.Event()
        self._timer_event = trio.Event()
        self._negotiated = trio.Event()
        self._closed = trio.Event()
        self._close_reason: str | None = None
        self._nursery: trio.Nursery | None = None
        self._rdma_limit = trio.CapacityLimiter(MAX_RDMA_OPS)
        self.rdma_bytes_written = 0
        self.rdma_bytes_read = 0
        self.log = logging.LoggerAdapter(log, {"connection": f"{qp.remote_address}"})

    # -- properties --------------------------------------------------------------------

    @property
    def remote_address(self) -> tuple[str, int]:
        return self.qp.remote_address

    @property
    def local_address(self) -> tuple[str, int]:
        return self.qp.local_address

    @property
    def max_read_write_size(self) -> int:
        return self.smbd.max_read_write_size

    @property
    def max_message_size(self) -> int:
        """The largest message the peer reassembles (its MaxFragmentedSize)."""
        return self.smbd.max_fragmented_send_size

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- running -----------------------------------------------------------------------

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        try:
            with unwrap_single():
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._pump)
                    nursery.start_soon(self._timer)
                    nursery.start_soon(self._watch_qp)
                    try:
                        yield
                    finally:
                        with trio.CancelScope(shield=True):
                            await self._shutdown("closed by the upper layer")
                        nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._release()

    def _post_receives(self) -> None:
        if self._closed.is_set() or len(self._messages) >= self.config.max_pending_messages:
            return
        size = self.config.smbd.max_receive_size
        n = min(self.smbd.receives_wanted(), len(self._free_recv))
        posted = 0
        try:
            for _ in range(n):
                slot = self._free_recv.popleft()
                try:
                    self.qp.post_recv(
                        _RECV << _KIND_SHIFT | slot, [Sge(self._recv_mr, slot * size, size)]
                    )
                except VerbsError:
                    self._free_recv.appendleft(slot)
                    raise
                posted += 1
        except VerbsError as e:
            self.log.info("post_recv failed: %s", e)
        finally:
            self.smbd.receives_posted(posted)

    def _flush_sends(self) -> None:
        size = self.config.smbd.max_send_size
        while self._free_send and not self._closed.is_set():
            slot = self._free_send[0]
            out = self._send_mr.buf[slot * size : (slot + 1) * size]
            sent = self.smbd.next_send_into(out)
            if sent is None:
                break
            self._free_send.popleft()
            try:
                self.qp.post_send(
                    _SEND << _KIND_SHIFT | slot,
                    [Sge(self._send_mr, slot * size, sent.length)],
                    invalidate_rkey=sent.invalidate_rkey,
                )
            except VerbsError as e:
                self._free_send.append(slot)
                self._fail(f"post_send failed: {e}")
                return
        self._send_event.set()
        self._send_event = trio.Event()

    def _kick(self) -> None:
        self._post_receives()
        self._flush_sends()
        self._timer_event.set()

    async def _pump(self) -> None:
        size = self.config.smbd.max_receive_size
        while True:
            for wc in await self.cq.poll(256):
                kind, index = wc.wr_id >> _KIND_SHIFT, wc.wr_id & ((1 << _KIND_SHIFT) - 1)
                if kind == _RECV:
                    self._on_recv(wc, index, size)
                elif kind == _SEND:
                    self._free_send.append(index)
                    if wc.status is not WcStatus.SUCCESS:
                        self._fail(f"send failed: {wc.status.value}")
                else:
                    self._on_rdma(wc, index)
            if not self._closed.is_set():
                self._kick()

    def _on_recv(self, wc: WorkCompletion, slot: int, size: int) -> None:
        self._free_recv.append(slot)
        if wc.status is not WcStatus.SUCCESS:
            if wc.status is WcStatus.FLUSHED:
                self._fail("the connection closed (receives flushed)")
            else:
                self._fail(f"receive failed: {wc.status.value}")
            self.smbd.receive_flushed()
            return
        if self._closed.is_set():
            self.smbd.receive_flushed()
            return
        data = self._recv_mr.buf[slot * size : slot * size + wc.byte_len]
        for ev in self.smbd.receive(data):
            if isinstance(ev, core.MessageReceived):
                self._messages.append(ev.data)
                self._message_event.set()
            elif isinstance(ev, core.Negotiated):
                self._negotiated.set()
                self._message_event.set()
            else:
                self._flush_sends()  # a negotiate response with an error status
                self._fail(ev.reason)

    def _on_rdma(self, wc: WorkCompletion, op_id: int) -> None:
        op = self._ops.get(op_id)
        if op is None:
            return
        if wc.status is not WcStatus.SUCCESS and op.error is None:
            op.error = f"RDMA {wc.opcode.value} failed: {wc.status.value}"
        op.pending -= 1
        if op.pending == 0:
            del self._ops[op_id]
            op.done.set()

    async def _timer(self) -> None:
        while True:
            deadline = self.smbd.next_timer()
            with trio.move_on_at(deadline if deadline is not None else float("inf")):
                await self._timer_event.wait()
                self._timer_event = trio.Event()
                continue
            for ev in self.smbd.handle_timer(trio.current_time()):
                if isinstance(ev, core.Disconnect):
                    self._fail(ev.reason)
            self._flush_sends()

    async def _watch_qp(self) -> None:
        await self.qp.wait_disconnected()
        self._fail("the queue pair was disconnected")

    def _fail(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self._close_reason = reason
        self.smbd.close(reason)
        self._closed.set()
        self._message_event.set()
        self._send_event.set()
        for op in self._ops.values():
            op.error = op.error or reason
            op.done.set()
        self._ops.clear()
        self.log.info("SMB Direct channel closed: %s", reason)
        if self._nursery is not None:
            # Disorderly shutdown: drop the queue pair now, not when the upper layer
            # notices; the peer's posted work is flushed by the disconnect.
            self._nursery.start_soon(self.qp.disconnect)

    async def _shutdown(self, reason: str) -> None:
        # Orderly: let queued messages go out (bounded), then disconnect the queue pair.
        with trio.move_on_after(_CLOSE_TIMEOUT):
            while (
                not self._closed.is_set()
                and self.qp.state is verbs.QPState.RTS
                and (self.smbd.queued_bytes or len(self._free_send) < self.config.send_slots)
            ):
                await trio.sleep(0.001)
        self._fail(reason)
        await self.qp.disconnect()

    def _release(self) -> None:
        for mr in list(self._regions):
            mr.deregister()
        self._regions.clear()
        self._recv_mr.deregister()
        self._send_mr.deregister()
        self.pd.dealloc()

    # -- messages ----------------------------------------------------------------------

    async def receive_message(self) -> memoryview:
        """The next reassembled upper-layer message; :class:`ChannelClosed` when gone."""
        while not self._messages:
            if self._closed.is_set():
                raise ChannelClosed(self._close_reason or "closed")
            await self._message_event.wait()
            self._message_event = trio.Event()
        msg = self._messages.popleft()
        self._kick()
        return msg

    async def send_message(
        self,
        buffers: Sequence[bytes | bytearray | memoryview],
        *,
        invalidate_token: int | None = None,
    ) -> None:
        """Queue one message; waits while more than one maximum message is queued."""
        limit = self.smbd.max_fragmented_send_size
        while self.smbd.queued_bytes >= limit:
            if self._closed.is_set():
                break
            await self._send_event.wait()
        if self._closed.is_set():
            raise ChannelClosed(self._close_reason or "closed")
        self.smbd.send(buffers, invalidate_token)
        self._flush_sends()

    # -- RDMA --------------------------------------------------------------------------

    def _check_descriptors(self, descriptors: Sequence[BufferDescriptorV1], length: int) -> None:
        if self._closed.is_set():
            raise ChannelClosed(self._close_reason or "closed")
        if not descriptors or len(descriptors) > MAX_DESCRIPTORS:
            raise SmbDirectError(f"{len(descriptors)} buffer descriptors (1..{MAX_DESCRIPTORS})")
        if length > self.max_read_write_size:
            raise SmbDirectError(
                f"{length} bytes exceed MaxReadWriteSize {self.max_read_write_size}"
            )
        if length > sum(d.length for d in descriptors):
            raise SmbDirectError("the descriptors describe fewer bytes than the transfer")

    async def _run_op(self, post: Callable[[int], int]) -> None:
        async with self._rdma_limit:  # bounds the work requests in flight (QPCap)
            await self._run_op_now(post)

    async def _run_op_now(self, post: Callable[[int], int]) -> None:
        op_id = next(self._op_ids)
        op = _Op(0)
        self._ops[op_id] = op
        try:
            op.pending = post(op_id)
        except VerbsError as e:
            self._ops.pop(op_id, None)
            raise SmbDirectError(str(e)) from e
        if op.pending == 0:
            self._ops.pop(op_id, None)
            return
        await op.done.wait()
        if op.error is not None:
            raise SmbDirectError(op.error)

    async def rdma_write(
        self, descriptors: Sequence[BufferDescriptorV1], data: bytes | bytearray | memoryview
    ) -> int:
        """RDMA Write ``data`` into the peer's buffers, in descriptor order (SMB2 READ)."""
        view = memoryview(data).cast("B")
        self._check_descriptors(descriptors, len(view))
        mr = self.pd.reg_mr(view, Access(0))
        self._regions.add(mr)

        def post(op_id: int) -> int:
            n = pos = 0
            for d in descriptors:
                k = min(d.length, len(view) - pos)
                if k <= 0:
                    break
                self.qp.post_rdma_write(
                    _RDMA << _KIND_SHIFT | op_id, [Sge(mr, pos, k)], d.offset, d.token
                )
                pos += k
                n += 1
            return n

        try:
            await self._run_op(post)
        finally:
            self._regions.discard(mr)
            mr.deregister()
        self.rdma_bytes_written += len(view)
        return len(view)

    async def rdma_read(
        self, descriptors: Sequence[BufferDescriptorV1], into: bytearray | memoryview
    ) -> int:
        """RDMA Read the peer's buffers into ``into`` (SMB2 WRITE); returns the bytes read:
        ``min(len(into), sum of descriptor lengths)``."""
        view = memoryview(into).cast("B")
        total = min(len(view), sum(d.length for d in descriptors))
        self._check_descriptors(descriptors, total)
        mr = self.pd.reg_mr(view, Access.LOCAL_WRITE | Access.REMOTE_WRITE)
        self._regions.add(mr)

        def post(op_id: int) -> int:
            n = pos = 0
            for d in descriptors:
                k = min(d.length, total - pos)
                if k <= 0:
                    break
                self.qp.post_rdma_read(
                    _RDMA << _KIND_SHIFT | op_id, Sge(mr, pos, k), d.offset, d.token
                )
                pos += k
                n += 1
            return n

        try:
            await self._run_op(post)
        finally:
            self._regions.discard(mr)
            mr.deregister()
        self.rdma_bytes_read += total
        return total

    def register_buffer(
        self, buffer: bytearray | memoryview, *, remote_write: bool
    ) -> RegisteredBuffer:
        """Client side: expose ``buffer`` to the peer (``remote_write``: the server RDMA
        writes into it, for SMB2 READ; else it RDMA reads from it, for SMB2 WRITE)."""
        access = Access.LOCAL_WRITE | Access.REMOTE_WRITE if remote_write else Access.REMOTE_READ
        mr = self.pd.reg_mr(memoryview(buffer).cast("B"), access)
        self._regions.add(mr)
        return RegisteredBuffer(self, mr)

    async def aclose(self) -> None:
        await self._shutdown("closed by the upper layer")

    def statistics(self) -> dict[str, int | str]:
        stats = dict(self.smbd.statistics())
        stats.update(
            rdma_bytes_written=self.rdma_bytes_written,
            rdma_bytes_read=self.rdma_bytes_read,
            regions=len(self._regions),
            pending_messages=len(self._messages),
        )
        return stats


def _make_channel(
    device: verbs.Device,
    pd: verbs.ProtectionDomain,
    make_qp: Callable[[verbs.CompletionQueue], verbs.QueuePair],
    role: core.Role,
    config: TransportConfig,
) -> SmbDirectChannel:
    c = config.smbd
    cq = device.create_cq(
        c.receive_credit_max + config.send_slots + MAX_RDMA_OPS * MAX_DESCRIPTORS + 64
    )
    qp = make_qp(cq)
    smbd = core.SmbDirectConnection(role, c, clock=trio.current_time)
    return SmbDirectChannel(device, pd, qp, cq, smbd, config)


def _qp_cap(config: TransportConfig) -> QPCap:
    return QPCap(
        max_send_wr=config.send_slots + MAX_RDMA_OPS * MAX_DESCRIPTORS,
        max_recv_wr=config.smbd.receive_credit_max,
        max_send_sge=1,
        max_recv_sge=1,
    )


@asynccontextmanager
async def connect(
    device: verbs.Device, host: str, port: int, config: TransportConfig | None = None
) -> AsyncIterator[SmbDirectChannel]:
    """Client: connect, negotiate ([MS-SMBD] 3.1.5.2), yield the channel; close on exit."""
    config = config or TransportConfig()
    pd = device.alloc_pd()
    ch = _make_channel(
        device,
        pd,
        lambda cq: device.create_qp(pd, cq, cq, _qp_cap(config)),
        core.Role.CLIENT,
        config,
    )
    try:
        ch.smbd.start()
        ch._post_receives()  # the negotiate response needs a receive before the request goes
        await ch.qp.connect(host, port, ird=config.ird, ord=config.ord)
    except BaseException:
        ch._release()
        raise
    async with ch._running():
        ch._flush_sends()
        with trio.move_on_after(_NEGOTIATE_TIMEOUT):
            while not ch._negotiated.is_set() and not ch.closed:
                await ch._message_event.wait()
                ch._message_event = trio.Event()
        if not ch._negotiated.is_set():
            raise ChannelClosed(f"SMB Direct negotiate failed: {ch._close_reason or 'timeout'}")
        yield ch


class SmbDirectServer:
    """Accepts SMB Direct connections on a verbs device and runs ``handler(channel)`` for
    each; the channel is closed and its memory freed when the handler returns."""

    def __init__(self, device: verbs.Device, config: TransportConfig | None = None) -> None:
        self.device = device
        self.config = config or TransportConfig()
        self.channels: set[SmbDirectChannel] = set()
        self.accepted = 0
        self.failed = 0
        self.listen_addresses: list[tuple[str, int]] = []

    async def serve(
        self,
        host: str,
        port: int,
        handler: Callable[[SmbDirectChannel], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listener = await self.device.listen(host, port)
        self.listen_addresses.append(listener.local_address)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(listener.local_address)
                while True:
                    request = await listener.get_request()
                    nursery.start_soon(self._serve_one, request, handler)
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()

    async def _serve_one(
        self,
        request: verbs.ConnectionRequest,
        handler: Callable[[SmbDirectChannel], Awaitable[None]],
    ) -> None:
        config = self.config
        pd = self.device.alloc_pd()
        try:
            ch = _make_channel(
                self.device,
                pd,
                lambda cq: request.create_qp(pd, cq, cq, _qp_cap(config)),
                core.Role.SERVER,
                config,
            )
            ch._post_receives()  # one receive for the negotiate request, before accepting
            await request.accept(ird=config.ird, ord=min(config.ord, request.ird))
        except (VerbsError, OSError) as e:
            self.failed += 1
            log.info("SMB Direct accept from %s failed: %s", request.remote_address, e)
            with trio.CancelScope(shield=True):
                await request.reject()
            return
        self.accepted += 1
        self.channels.add(ch)
        try:
            async with ch._running():
                with trio.move_on_after(_NEGOTIATE_TIMEOUT):
                    while not ch._negotiated.is_set() and not ch.closed:
                        await ch._message_event.wait()
                        ch._message_event = trio.Event()
                if not ch._negotiated.is_set():
                    self.failed += 1
                    log.info("SMB Direct negotiate from %s failed", request.remote_address)
                    return
                try:
                    await handler(ch)
                except SmbDirectError as e:
                    log.info("SMB Direct channel from %s ended: %s", request.remote_address, e)
                except Exception:
                    log.exception("SMB Direct handler failed for %s", request.remote_address)
        finally:
            self.channels.discard(ch)

    def statistics(self) -> dict[str, int]:
        return {
            "channels": len(self.channels),
            "accepted": self.accepted,
            "failed": self.failed,
        }
